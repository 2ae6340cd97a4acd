//! gatehouse-tests: the black-box conformance suite shared by every deployable.
