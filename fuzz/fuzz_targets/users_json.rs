//! The users JSON document (the daemon's users file, the firmware's flash record).
//!
//! Input: a JSON document.
//!
//! Asserts:
//! - loading never panics, and a refusal loads nothing;
//! - a table that loads holds only valid, distinct names (ignoring ASCII case) and valid
//!   hashes, has used up the first-user-becomes-admin rule if it has users, and its
//!   generation counter lies above every user's generation;
//! - save → load gives the same table, and saving that again gives the same bytes; the save
//!   always fits [`UserTable::JSON_CAPACITY`];
//! - after revoking a user's sessions, the user has a new generation and the table still
//!   round-trips.
#![no_main]

use gatehouse_core::password::PasswordHash;
use gatehouse_core::users::{UserTable, parse_username, same_username};
use libfuzzer_sys::fuzz_target;

type Table = UserTable<4>;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = Table::from_json(data) else {
        return;
    };
    let users: Vec<_> = table.iter().collect();
    assert_eq!(users.len(), table.len());
    assert!(table.len() <= 4);
    for (i, user) in users.iter().enumerate() {
        assert_eq!(
            parse_username(&user.name).as_deref(),
            Ok(user.name.as_str())
        );
        assert!(
            users[..i]
                .iter()
                .all(|u| !same_username(&u.name, &user.name)),
            "{:?} twice",
            user.name
        );
        assert_eq!(table.find(&user.name.to_ascii_uppercase()), Some(*user));
        assert_eq!(
            PasswordHash::parse(user.password.as_str()).as_ref(),
            Ok(&user.password)
        );
        if user.generation < u32::MAX {
            assert!(table.next_generation() > user.generation);
        }
    }
    if !table.is_empty() {
        assert!(table.admin_assigned());
    }
    round_trip(&table);

    if let Some(first) = users.first() {
        let mut bumped = table.clone();
        let old = first.generation;
        let new = bumped
            .bump_generation(&first.name)
            .expect("the user exists");
        assert_ne!(new, old);
        assert_eq!(bumped.generation_of(&first.name), Some(new));
        round_trip(&bumped);
    }
});

fn round_trip(table: &Table) {
    let mut out = vec![0u8; Table::JSON_CAPACITY];
    let n = table
        .to_json(&mut out)
        .expect("JSON_CAPACITY always suffices");
    let saved = &out[..n];
    let loaded = Table::from_json(saved).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(saved));
    });
    assert_eq!(&loaded, table, "{}", String::from_utf8_lossy(saved));
    let mut again = vec![0u8; Table::JSON_CAPACITY];
    let m = loaded.to_json(&mut again).unwrap();
    assert_eq!(&again[..m], saved);
}
