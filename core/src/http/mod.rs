//! HTTP/1.1 on the wire: request and response heads, body framing, canonical paths, the
//! forwarded head and gatehouse's own responses.
//!
//! This layer answers "what do these bytes say and where do they end"; the gateway decision
//! (who is asking, may they pass) builds on it. Everything is sans-I/O: the shell hands in
//! the bytes it read and gets back lengths, values and bytes to write.
//!
//! # How a shell drives a connection
//!
//! 1. Read from the client into a buffer of at least [`MAX_HEAD_LEN`] bytes and call
//!    [`RequestHead::parse`] on everything read since the previous request ended.
//!    [`Parse::Incomplete`] → read more (the size limit is enforced here: past it the answer
//!    is [`RequestError::HeadTooLarge`]). An error → write the response for
//!    [`RequestError::status`] (e.g. with [`write_error`]) and close.
//! 2. The gateway decides; to forward, [`canonicalize`] the target, and
//!    [`write_forward_head`] writes the head the app receives.
//! 3. If [`RequestHead::expect_continue`], write [`CONTINUE_100`] to the client. Relay the
//!    request body with a [`BodyRelay`] made from [`RequestHead::body`], starting at
//!    [`RequestHead::head_len`] in the buffer; stop when it [`is_done`](BodyRelay::is_done).
//! 4. Read the app's answer and parse it with [`ResponseHead::parse`] (passing whether the
//!    request was `HEAD` and asked for an upgrade). [`ResponseBody::Interim`] → relay and
//!    parse the next head; [`ResponseBody::Tunnel`] → relay, then copy bytes both ways;
//!    [`ResponseBody::Final`] → relay the body. [`write_client_response_head`] writes the
//!    head the client gets and returns a [`ResponsePlan`] with the [`BodyRelay`] to use and
//!    whether the client connection closes afterwards.
//! 5. If the client wants to keep the connection ([`RequestHead::keep_alive`]), the bytes
//!    after the request body are the next request: back to step 1. Every request is judged.

mod body;
pub mod path;
mod request;
mod response;
mod rewrite;
mod write;

pub use body::{
    BodyError, BodyFraming, BodyRelay, ChunkedOutput, MAX_CHUNK_EXT_LEN, MAX_CHUNK_SIZE_DIGITS,
    MAX_TRAILER_LEN, Relayed,
};
pub use path::{CanonicalTarget, PathClass, PathError, PathRules, canonicalize};
pub(crate) use request::split_semicolons;
pub use request::{
    ConnectionOptions, MAX_HEAD_LEN, MAX_HEADERS, Parse, RequestError, RequestHead, Version,
    list_tokens,
};
pub use response::{
    BASIC_CHALLENGE, BASIC_REALM, CONTINUE_100, RedirectError, ResponseBody, ResponseError,
    ResponseHead, ResponsePlan, ResponseWriter, Status, write_client_response_head, write_error,
    write_redirect, write_too_many_requests,
};
pub use rewrite::{
    ForwardOptions, Identity, RewriteError, is_dropped_request_header, write_forward_head,
};
pub(crate) use write::Cursor;
pub use write::OutputFull;
