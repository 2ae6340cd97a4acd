//! The users table: who may log in, who is admin, and which sessions are still good.
//!
//! A [`UserTable`] holds at most `N` users, fixed at compile time. Each [`User`] has a name
//! (matched ignoring ASCII case, stored as given), an admin flag, a [`PasswordHash`] and a
//! *generation*: every session token carries the generation it was issued under, so bumping
//! it (a password change, "log out everywhere") revokes every session of that user at once.
//! Generations are drawn from one counter for the whole table (`next_generation`, kept in the
//! JSON), so a user deleted and created again under the same name never gets back a
//! generation that an old token of the deleted user carries.
//!
//! The threats each rule exists for:
//! - **Look-alike accounts.** `Alice` and `alice` are one user: adding the other spelling is a
//!   [`UserError::Duplicate`], and a file holding both is refused. Folding is ASCII only, so
//!   the rule is the same on every platform and needs no Unicode tables.
//! - **Names that break logs, headers or terminals.** A [`Username`] is non-empty, at most
//!   [`MAX_USERNAME_LEN`](crate::MAX_USERNAME_LEN) bytes, has no control characters, no
//!   bidirectional controls or zero-width characters (which make a name display as another,
//!   or two names that look alike differ), and no whitespace at either end
//!   ([`parse_username`]).
//! - **Claiming admin.** A user provisioned from a trusted identity header (Navidrome's rule)
//!   is admin only when they are the first user the table ever created. "Ever" is a flag the
//!   table keeps and writes to its JSON (`admin_assigned`): deleting every user does not
//!   reopen the door to the next stranger whose name a proxy passes through.
//! - **Users changing what they should not.** With user editing disabled (Navidrome's
//!   `EnableUserEditing=false`), [`UserTable::change_password`] refuses a non-admin's change
//!   of their own password; admins may change anyone's, non-admins never someone else's.
//! - **Username probing by timing.** [`UserTable::authenticate`] spends the same work on an
//!   unknown name as on a wrong password ([`password::verify_or_dummy`]).
//! - **A table made anew taking over old sessions.** Generations start again in a new table,
//!   so a session token of the old table's `alice` would fit the new table's `alice`, who may
//!   be someone else. Every table has a random id ([`UserTable::table_id`]), drawn by the shell
//!   when it makes the table ([`UserTable::with_id`]) and kept in the JSON; a session names
//!   the table it was issued for, and no other table accepts it. A document written before
//!   table ids has none and loads as table 0, the id sessions issued for it then carry: a
//!   table made anew always gets another id, so it still never accepts them.
//! - **A damaged users file.** [`UserTable::from_json`] refuses malformed JSON, an unknown
//!   version, invalid or duplicate names, unparsable hashes and more users than fit, each with
//!   its own [`LoadError`]; it never truncates or guesses.
//!
//!
//! # App passwords
//!
//! A user may have up to [`MAX_APP_PASSWORDS`] app passwords (and a table up to `A`, default
//! [`DEFAULT_APP_PASSWORD_CAPACITY`], for all its users together): random secrets with a label
//! ("phone", "car"), made by gatehouse from random bytes the caller passes, shown once, each
//! revocable on its own, each with the time it was created and last used. Music apps and
//! other non-interactive clients use them instead of the login password: as the Subsonic
//! secret (`u` + `p`, or `u` + `t` + `s`), as the OpenSubsonic `apiKey`, and as the password
//! of HTTP Basic. Changing the login password or logging out everywhere does not revoke them;
//! revoking one (or deleting the user) does.
//!
//! **How they are stored, and what a reader of the users file learns.** Subsonic token
//! authentication sends `t = md5(secret + salt)` with a fresh salt: to check it, the server
//! must know the secret itself, not a hash of it. So app passwords are stored *as they are*,
//! in the users file (daemon) or the users record in flash (firmware). Whoever can read that
//! file learns every app password, and can use each one (Subsonic, `apiKey`, HTTP Basic) until
//! it is revoked; they learn nothing about login passwords, which stay PBKDF2/argon2id hashes.
//! Encrypting the secrets under a key kept next to the file would not change this for someone
//! who reads the state directory, so gatehouse does not pretend to: keep the state directory
//! readable by gatehouse alone (the daemon writes it `0600`), and revoke an app password when
//! a device is lost. What makes this acceptable: an app password is 144 random bits, so it
//! reveals nothing about the user's other passwords, and it is limited to what that user can
//! do, one revocation away from useless.
//!
//! Checks are constant-time: a password or token is compared with every one of the user's app
//! passwords (no early exit), and an `apiKey` with every app password in the table, so the
//! time taken does not tell which one matched or how much of one did.
//!
//! The JSON document, shared by the daemon's users file and the firmware's flash (version 2;
//! version 1 documents, which have no `app_passwords`, still load):
//!
//! ```json
//! {"version":2,"table_id":8342178239416782237,"admin_assigned":true,"next_generation":4,"users":[
//!   {"name":"alice","admin":true,"password":"$pbkdf2-sha256$i=600000,l=32$…$…","generation":3,
//!    "app_passwords":[{"label":"phone","secret":"…","created":1790000000,"last_used":null}]}
//! ]}
//! ```

use crate::Username;
use crate::password::{
    self, GENERATED_PASSWORD_RANDOM_LEN, GeneratedPassword, PASSWORD_HASH_CAPACITY, PasswordHash,
    PasswordHashError, SALT_LEN,
};
use core::fmt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq as _;

/// Version number written to the users JSON document.
pub const USERS_FORMAT_VERSION: u32 = 2;

/// Oldest version of the users JSON document that still loads (it has no app passwords).
pub const OLDEST_USERS_FORMAT_VERSION: u32 = 1;

/// Random bytes a table id is made from ([`UserTable::with_id`]).
pub const TABLE_ID_RANDOM_LEN: usize = 8;

/// Most app passwords one user has.
pub const MAX_APP_PASSWORDS: usize = 8;

/// Most app passwords a table holds for all its users together, unless its type says
/// otherwise (`UserTable<N, A>`). App passwords live in one pool per table, so that a table
/// sized for many users does not reserve room for eight app passwords each.
pub const DEFAULT_APP_PASSWORD_CAPACITY: usize = 64;

/// Longest app password label, in bytes.
pub const MAX_APP_PASSWORD_LABEL_LEN: usize = 32;

/// Random bytes an app password is made from (144 bits).
pub const APP_PASSWORD_RANDOM_LEN: usize = GENERATED_PASSWORD_RANDOM_LEN;

/// An app password's last-used time is moved (and reported as a change worth saving) at most
/// this often, so a busy client does not make the shell write the users file on every request.
pub const LAST_USED_GRANULARITY_SECS: u64 = 600;

/// Bytes of JSON one app password can take at most (a 32-byte label of quotes escapes to 64).
pub const JSON_BYTES_PER_APP_PASSWORD: usize =
    2 * MAX_APP_PASSWORD_LABEL_LEN + password::GENERATED_PASSWORD_LEN + 120;

/// Bytes of JSON one user can take at most, without app passwords (a 64-byte name of quotes
/// escapes to 128 bytes).
pub const JSON_BYTES_PER_USER: usize = 2 * crate::MAX_USERNAME_LEN + PASSWORD_HASH_CAPACITY + 100;

/// Bytes of JSON around the users list at most.
pub const JSON_OVERHEAD_BYTES: usize = 112;

/// Why a string is not a valid username.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UsernameError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_USERNAME_LEN`](crate::MAX_USERNAME_LEN) bytes.
    TooLong,
    /// Holds a control character (C0, DEL or C1).
    ControlCharacter,
    /// Starts or ends with whitespace.
    SurroundingWhitespace,
    /// Holds a bidirectional control or an invisible (zero-width) character
    /// ([`is_invisible_or_bidi`]).
    InvisibleCharacter,
}

impl fmt::Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "username is empty",
            Self::TooLong => "username is too long",
            Self::ControlCharacter => "username contains a control character",
            Self::SurroundingWhitespace => "username starts or ends with whitespace",
            Self::InvisibleCharacter => {
                "username contains a bidirectional control or an invisible character"
            }
        })
    }
}

impl core::error::Error for UsernameError {}

/// Checks a username against the rules above and stores it as given.
pub fn parse_username(name: &str) -> Result<Username, UsernameError> {
    if name.is_empty() {
        return Err(UsernameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(UsernameError::ControlCharacter);
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(UsernameError::SurroundingWhitespace);
    }
    if name.chars().any(is_invisible_or_bidi) {
        return Err(UsernameError::InvisibleCharacter);
    }
    let mut stored = Username::new();
    stored.push_str(name).map_err(|_| UsernameError::TooLong)?;
    Ok(stored)
}

/// Whether `c` is a character that changes how a name looks without being seen: the
/// bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which can
/// make `alice` display as `ecila` or hide a suffix in a log line or on the account page, and
/// the zero-width and invisible characters (U+00AD, U+180E, U+200B–U+200D, U+2060–U+2064,
/// U+FEFF), which make two names that look the same different users.
pub fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
    )
}

/// Whether two usernames name the same user: equal ignoring ASCII case.
pub fn same_username(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// The name, as first given.
    pub name: Username,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// The password hash.
    pub password: PasswordHash,
    /// Sessions issued under another generation are revoked.
    pub generation: u32,
}

/// An app password's label.
pub type AppPasswordLabel = heapless::String<MAX_APP_PASSWORD_LABEL_LEN>;

/// A secret for one client: see the module documentation.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AppPassword {
    /// Position of the owner in the table's users (kept right when users are removed).
    #[serde(skip)]
    owner: u32,
    /// What the user calls it ("phone"); unique per user, ignoring ASCII case.
    pub label: AppPasswordLabel,
    secret: GeneratedPassword,
    /// When it was made, in UNIX seconds.
    pub created: u64,
    /// When it was last used (to within [`LAST_USED_GRANULARITY_SECS`]), in UNIX seconds.
    pub last_used: Option<u64>,
}

impl fmt::Debug for AppPassword {
    /// Never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppPassword")
            .field("label", &self.label)
            .field("created", &self.created)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

impl AppPassword {
    /// Whether `candidate` is this secret, in constant time for a candidate of any content.
    fn matches(&self, candidate: &[u8]) -> subtle::Choice {
        use subtle::ConstantTimeEq;
        self.secret.as_bytes().ct_eq(candidate)
    }

    /// Whether `token` is md5(secret ‖ salt) (Subsonic token authentication).
    fn matches_token(
        &self,
        token: &[u8; crate::subsonic::TOKEN_LEN],
        salt: &[u8],
    ) -> subtle::Choice {
        use subtle::ConstantTimeEq;
        crate::subsonic::token(self.secret.as_bytes(), salt).ct_eq(token)
    }
}

/// Why a label is not a valid app password label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LabelError {
    /// The label is empty.
    Empty,
    /// Longer than [`MAX_APP_PASSWORD_LABEL_LEN`] bytes.
    TooLong,
    /// Holds a control character (C0, DEL or C1).
    ControlCharacter,
    /// Starts or ends with whitespace.
    SurroundingWhitespace,
    /// Holds a bidirectional control or an invisible character ([`is_invisible_or_bidi`]).
    InvisibleCharacter,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "label is empty",
            Self::TooLong => "label is too long",
            Self::ControlCharacter => "label contains a control character",
            Self::SurroundingWhitespace => "label starts or ends with whitespace",
            Self::InvisibleCharacter => {
                "label contains a bidirectional control or an invisible character"
            }
        })
    }
}

impl core::error::Error for LabelError {}

/// Checks an app password label (the rules of usernames, shorter).
pub fn parse_label(label: &str) -> Result<AppPasswordLabel, LabelError> {
    match parse_username(label) {
        Err(UsernameError::Empty) => Err(LabelError::Empty),
        Err(UsernameError::ControlCharacter) => Err(LabelError::ControlCharacter),
        Err(UsernameError::SurroundingWhitespace) => Err(LabelError::SurroundingWhitespace),
        Err(UsernameError::InvisibleCharacter) => Err(LabelError::InvisibleCharacter),
        Err(UsernameError::TooLong) => Err(LabelError::TooLong),
        Ok(_) => AppPasswordLabel::try_from(label).map_err(|_| LabelError::TooLong),
    }
}

/// Why an app password could not be added or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPasswordError {
    /// No user of that name.
    UnknownUser,
    /// The label is not valid.
    InvalidLabel(LabelError),
    /// The user has an app password with that label (ignoring ASCII case).
    DuplicateLabel,
    /// The user has [`MAX_APP_PASSWORDS`] app passwords.
    Full,
    /// The table holds as many app passwords as it can, for all users together.
    TableFull,
    /// The user has no app password with that label.
    UnknownLabel,
}

impl fmt::Display for AppPasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownUser => f.write_str("no such user"),
            Self::InvalidLabel(e) => write!(f, "invalid app password label: {e}"),
            Self::DuplicateLabel => f.write_str("an app password with that label already exists"),
            Self::Full => write!(
                f,
                "the user has {MAX_APP_PASSWORDS} app passwords: revoke one first"
            ),
            Self::TableFull => f.write_str("the users table holds all the app passwords it can"),
            Self::UnknownLabel => f.write_str("no app password with that label"),
        }
    }
}

impl core::error::Error for AppPasswordError {}

/// What a Subsonic token check against a user's app passwords found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// The token was made from the app password at this index.
    Matched(usize),
    /// The user has app passwords, and the token was made from none of them.
    NoMatch,
    /// The user is unknown or has no app password: nothing a token could be made from.
    NoAppPassword,
}

impl Serialize for PasswordHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a change to the table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserError {
    /// The name is not a valid username.
    InvalidName(UsernameError),
    /// A user of that name (ignoring ASCII case) exists.
    Duplicate,
    /// The table holds its capacity of users.
    TableFull,
    /// No user of that name.
    UnknownUser,
    /// User editing is disabled and the user is not an admin.
    UserEditingDisabled,
    /// Only an admin may change another user.
    NotAdmin,
    /// A password could not be hashed.
    PasswordHash(PasswordHashError),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(e) => write!(f, "invalid username: {e}"),
            Self::Duplicate => f.write_str("a user of that name already exists"),
            Self::TableFull => f.write_str("the users table is full"),
            Self::UnknownUser => f.write_str("no such user"),
            Self::UserEditingDisabled => {
                f.write_str("user editing is disabled: only an admin can change passwords")
            }
            Self::NotAdmin => f.write_str("only an admin can change another user"),
            Self::PasswordHash(e) => write!(f, "password hash: {e}"),
        }
    }
}

impl core::error::Error for UserError {}

/// Why a login was refused. The shell logs it; the client must see the same answer for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// No user of that name (a dummy hash was verified to spend the same time).
    UnknownUser,
    /// The password does not match.
    WrongPassword,
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownUser => "unknown user",
            Self::WrongPassword => "wrong password",
        })
    }
}

impl core::error::Error for LoginError {}

/// Deepest nesting of arrays and objects a users document may have (it needs five: the
/// document, `users`, a user, `app_passwords`, an app password).
pub const MAX_JSON_DEPTH: usize = 8;

/// Whether `json` nests `[` and `{` more than `limit` deep, counting outside strings only.
fn json_depth_exceeds(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Why a users JSON document was refused. Nothing is loaded when any of these is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LoadError {
    /// Not JSON, or not the shape of a users document (missing or unknown fields, wrong
    /// types, trailing data).
    Malformed(serde_json_core::de::Error),
    /// Arrays and objects nested deeper than [`MAX_JSON_DEPTH`] (anywhere, even in a field
    /// that is otherwise ignored).
    NestedTooDeep,
    /// No `version` field.
    MissingVersion,
    /// A `version` other than [`USERS_FORMAT_VERSION`].
    UnsupportedVersion(u32),
    /// More users than the table's capacity.
    TooManyUsers {
        /// The capacity of the table.
        capacity: usize,
    },
    /// The user at `index` (from 0) has an invalid name.
    InvalidUsername {
        /// Position in the `users` list.
        index: usize,
        /// What is wrong with the name.
        reason: UsernameError,
    },
    /// The user at `index` has the name of an earlier one (ignoring ASCII case).
    DuplicateUser {
        /// Position in the `users` list.
        index: usize,
        /// The repeated name.
        name: Username,
    },
    /// The user at `index` has a password hash that does not parse.
    InvalidPasswordHash {
        /// Position in the `users` list.
        index: usize,
        /// The user's name.
        name: Username,
        /// What is wrong with the hash.
        reason: PasswordHashError,
    },
    /// The user at `index` has an app password that is not valid.
    InvalidAppPassword {
        /// Position in the `users` list.
        index: usize,
        /// The user's name.
        name: Username,
        /// What is wrong with it.
        reason: AppPasswordFault,
    },
}

/// What is wrong with an app password in a users document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AppPasswordFault {
    /// More than [`MAX_APP_PASSWORDS`].
    TooMany,
    /// More app passwords in the document than the table holds for all users.
    TableFull,
    /// The label is not valid.
    InvalidLabel(LabelError),
    /// A label appears twice (ignoring ASCII case).
    DuplicateLabel,
    /// The secret is not a generated one (24 base64url characters).
    InvalidSecret,
}

impl fmt::Display for AppPasswordFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany => write!(f, "more than {MAX_APP_PASSWORDS} app passwords"),
            Self::TableFull => f.write_str("more app passwords than the table holds"),
            Self::InvalidLabel(e) => write!(f, "app password: {e}"),
            Self::DuplicateLabel => f.write_str("app password label listed twice"),
            Self::InvalidSecret => f.write_str("app password secret is malformed"),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "users document is malformed: {e}"),
            Self::NestedTooDeep => write!(
                f,
                "users document nests arrays or objects deeper than {MAX_JSON_DEPTH}"
            ),
            Self::MissingVersion => f.write_str("users document has no version"),
            Self::UnsupportedVersion(v) => write!(
                f,
                "users document version {v} is not supported (expected {OLDEST_USERS_FORMAT_VERSION} to {USERS_FORMAT_VERSION})"
            ),
            Self::TooManyUsers { capacity } => {
                write!(f, "users document holds more than {capacity} users")
            }
            Self::InvalidUsername { index, reason } => write!(f, "user #{index}: {reason}"),
            Self::DuplicateUser { index, name } => {
                write!(f, "user #{index} ({name}) is listed twice")
            }
            Self::InvalidPasswordHash {
                index,
                name,
                reason,
            } => write!(f, "user #{index} ({name}): {reason}"),
            Self::InvalidAppPassword {
                index,
                name,
                reason,
            } => write!(f, "user #{index} ({name}): {reason}"),
        }
    }
}

impl core::error::Error for LoadError {}

/// Why the table could not be written as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveError {
    /// The output buffer is too small; [`UserTable::JSON_CAPACITY`] always suffices.
    BufferTooSmall,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small for the users document")
    }
}

impl core::error::Error for SaveError {}

/// What [`UserTable::provision`] did.
#[derive(Debug)]
pub struct Provisioned<'a> {
    /// The user, existing or new.
    pub user: &'a User,
    /// Whether the user was created just now (the shell must persist the table).
    pub created: bool,
}

/// A fixed-capacity table of at most `N` users and `A` app passwords (all users together,
/// at most [`MAX_APP_PASSWORDS`] each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserTable<const N: usize, const A: usize = DEFAULT_APP_PASSWORD_CAPACITY> {
    users: heapless::Vec<User, N>,
    /// Random, drawn when the table was made; every session token names it.
    table_id: u64,
    admin_assigned: bool,
    next_generation: u32,
    /// Every user's app passwords, each naming its owner: grouped by owner in the users'
    /// order, a user's in the order made.
    app_passwords: heapless::Vec<AppPassword, A>,
}

impl<const N: usize, const A: usize> Default for UserTable<N, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const A: usize> UserTable<N, A> {
    /// Bytes of JSON a table of this capacity can take at most: a buffer of this size always
    /// holds [`UserTable::to_json`]'s output.
    pub const JSON_CAPACITY: usize =
        JSON_OVERHEAD_BYTES + N * JSON_BYTES_PER_USER + A * JSON_BYTES_PER_APP_PASSWORD;

    /// An empty table on which no user has been created yet, with table id 0 (the id of a
    /// document written before table ids). A shell making a table for real uses
    /// [`UserTable::with_id`].
    pub const fn new() -> Self {
        Self {
            users: heapless::Vec::new(),
            table_id: 0,
            admin_assigned: false,
            next_generation: 0,
            app_passwords: heapless::Vec::new(),
        }
    }

    /// An empty table whose id is made from `random` bytes (never 0): sessions issued for any
    /// other table are refused by it.
    pub fn with_id(random: [u8; TABLE_ID_RANDOM_LEN]) -> Self {
        let mut table = Self::new();
        table.renew_id(random);
        table
    }

    /// Gives the table a new id made from `random` bytes (never 0): every session issued for
    /// it so far is refused from now on. For a copy that becomes a table of its own (a board
    /// provisioned from the users file).
    pub fn renew_id(&mut self, random: [u8; TABLE_ID_RANDOM_LEN]) {
        self.table_id = u64::from_le_bytes(random).max(1);
    }

    /// The table's id, which every session token issued for it names.
    pub fn table_id(&self) -> u64 {
        self.table_id
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the table has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether no more users fit.
    pub fn is_full(&self) -> bool {
        self.users.is_full()
    }

    /// Most users the table holds.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Whether the table has ever created a user: from then on, provisioning makes no admin.
    pub fn admin_assigned(&self) -> bool {
        self.admin_assigned
    }

    /// The generation the next created user or revocation will get.
    pub fn next_generation(&self) -> u32 {
        self.next_generation
    }

    /// The users, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.iter()
    }

    /// The user named `name`, ignoring ASCII case.
    pub fn find(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| same_username(&u.name, name))
    }

    /// The current generation of `name`'s sessions, or `None` for an unknown user.
    pub fn generation_of(&self, name: &str) -> Option<u32> {
        self.find(name).map(|u| u.generation)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.users.iter().position(|u| same_username(&u.name, name))
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut User, UserError> {
        self.users
            .iter_mut()
            .find(|u| same_username(&u.name, name))
            .ok_or(UserError::UnknownUser)
    }

    /// The next generation from the table-wide counter (wrapping after 2^32 changes).
    fn take_generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        generation
    }

    /// Gives `name` a generation it has not had just before, revoking its sessions.
    fn renew_generation(&mut self, name: &str) -> Result<&mut User, UserError> {
        let current = self.get_mut(name)?.generation;
        let mut next = self.take_generation();
        if next == current {
            // Only after the counter wrapped: never hand back the generation being revoked.
            next = self.take_generation();
        }
        let user = self.get_mut(name)?;
        user.generation = next;
        Ok(user)
    }

    /// Adds a user, with a fresh generation (the CLI's `users add`). An explicit `admin` is taken as
    /// given; either way the first-user-becomes-admin rule of [`UserTable::provision`] is used
    /// up, since the table now has had a user.
    pub fn add(
        &mut self,
        name: &str,
        admin: bool,
        password: PasswordHash,
    ) -> Result<&User, UserError> {
        let name = parse_username(name).map_err(UserError::InvalidName)?;
        if self.find(&name).is_some() {
            return Err(UserError::Duplicate);
        }
        if self.is_full() {
            return Err(UserError::TableFull);
        }
        let generation = self.take_generation();
        self.users
            .push(User {
                name,
                admin,
                password,
                generation,
            })
            .map_err(|_| UserError::TableFull)?;
        self.admin_assigned = true;
        self.users.last().ok_or(UserError::TableFull)
    }

    /// Removes a user and returns it. Their sessions die with them: a session names a user the
    /// table no longer has.
    pub fn remove(&mut self, name: &str) -> Result<User, UserError> {
        let index = self.position(name).ok_or(UserError::UnknownUser)?;
        let owner = index as u32;
        // The user's app passwords go with them; later users move down one place.
        self.app_passwords.retain(|a| a.owner != owner);
        for a in self.app_passwords.iter_mut() {
            if a.owner > owner {
                a.owner -= 1;
            }
        }
        Ok(self.users.remove(index))
    }

    /// Sets a user's password as an administrative act (the CLI's `users passwd`) and bumps
    /// their generation, revoking their sessions. Returns the new generation.
    pub fn set_password(&mut self, name: &str, password: PasswordHash) -> Result<u32, UserError> {
        let user = self.renew_generation(name)?;
        user.password = password;
        Ok(user.generation)
    }

    /// Sets a user's password on behalf of the logged-in user `actor`, under the deployment's
    /// `enable_user_editing` setting: admins may change anyone's password; a non-admin only
    /// their own, and only when user editing is enabled. Checking the actor's current password
    /// first is the caller's part. Returns the target's new generation.
    pub fn change_password(
        &mut self,
        actor: &str,
        target: &str,
        password: PasswordHash,
        enable_user_editing: bool,
    ) -> Result<u32, UserError> {
        self.may_change_password(actor, target, enable_user_editing)?;
        self.set_password(target, password)
    }

    /// Whether [`UserTable::change_password`] would let `actor` change `target`'s password,
    /// asked before the expensive part (checking the current password, hashing the new one)
    /// so that a refusal costs nothing and says why at once.
    pub fn may_change_password(
        &self,
        actor: &str,
        target: &str,
        enable_user_editing: bool,
    ) -> Result<(), UserError> {
        let actor_is_admin = self.find(actor).ok_or(UserError::UnknownUser)?.admin;
        if !actor_is_admin {
            if !same_username(actor, target) {
                return Err(UserError::NotAdmin);
            }
            if !enable_user_editing {
                return Err(UserError::UserEditingDisabled);
            }
        }
        self.find(target).map(|_| ()).ok_or(UserError::UnknownUser)
    }

    /// Grants or removes admin rights.
    pub fn set_admin(&mut self, name: &str, admin: bool) -> Result<(), UserError> {
        self.get_mut(name)?.admin = admin;
        if admin {
            self.admin_assigned = true;
        }
        Ok(())
    }

    /// Bumps a user's generation: every session issued so far is revoked ("log out
    /// everywhere"). Returns the new generation.
    pub fn bump_generation(&mut self, name: &str) -> Result<u32, UserError> {
        Ok(self.renew_generation(name)?.generation)
    }

    /// Finds or creates the user a trusted proxy names (Navidrome's rule): a new user gets a
    /// random password no one ever sees, made from `password_random`, salted with `salt` and
    /// hashed with `iterations`; the first user the table ever created is admin, later ones
    /// are not.
    ///
    /// Nothing is hashed when the user exists. For a new user, pass the deployment's usual
    /// iteration count: a lower one would not weaken the random password, but would make this
    /// user's failed logins measurably faster than others', telling a prober the name exists.
    pub fn provision(
        &mut self,
        name: &str,
        password_random: &[u8; GENERATED_PASSWORD_RANDOM_LEN],
        salt: &[u8; SALT_LEN],
        iterations: u32,
    ) -> Result<Provisioned<'_>, UserError> {
        let name = parse_username(name).map_err(UserError::InvalidName)?;
        if let Some(index) = self.position(&name) {
            let user = self.users.get(index).ok_or(UserError::UnknownUser)?;
            return Ok(Provisioned {
                user,
                created: false,
            });
        }
        if self.is_full() {
            return Err(UserError::TableFull);
        }
        let secret = password::generate_password(password_random);
        let hash = password::hash_password(secret.as_bytes(), salt, iterations)
            .map_err(UserError::PasswordHash)?;
        let admin = !self.admin_assigned;
        let user = self.add(&name, admin, hash)?;
        Ok(Provisioned {
            user,
            created: true,
        })
    }

    /// Checks a login. An unknown name costs a dummy PBKDF2 of `dummy_iterations` (pass the
    /// deployment's usual count), so it takes as long as a wrong password. The two errors are
    /// for the log; the client must get the same answer for both.
    pub fn authenticate(
        &self,
        name: &str,
        password: &[u8],
        dummy_iterations: u32,
    ) -> Result<&User, LoginError> {
        let user = self.find(name);
        let ok = password::verify_or_dummy(user.map(|u| &u.password), password, dummy_iterations);
        match (user, ok) {
            (Some(user), true) => Ok(user),
            (Some(_), false) => Err(LoginError::WrongPassword),
            (None, _) => Err(LoginError::UnknownUser),
        }
    }

    /// Makes an app password for `name`, labelled `label`, from `random` (fresh random bytes),
    /// created `now` (UNIX seconds). Returns the secret: show it to the user once.
    pub fn add_app_password(
        &mut self,
        name: &str,
        label: &str,
        random: &[u8; APP_PASSWORD_RANDOM_LEN],
        now: u64,
    ) -> Result<GeneratedPassword, AppPasswordError> {
        let label = parse_label(label).map_err(AppPasswordError::InvalidLabel)?;
        let owner = self.position(name).ok_or(AppPasswordError::UnknownUser)? as u32;
        let mut own = self.app_passwords.iter().filter(|a| a.owner == owner);
        if own.clone().any(|a| a.label.eq_ignore_ascii_case(&label)) {
            return Err(AppPasswordError::DuplicateLabel);
        }
        if own.nth(MAX_APP_PASSWORDS - 1).is_some() {
            return Err(AppPasswordError::Full);
        }
        let secret = password::generate_password(random);
        // Kept grouped by owner, in the users' order (as the document lists them), so a
        // table saved and loaded again is the same table.
        let at = self
            .app_passwords
            .iter()
            .position(|a| a.owner > owner)
            .unwrap_or(self.app_passwords.len());
        self.app_passwords
            .insert(
                at,
                AppPassword {
                    owner,
                    label,
                    secret: secret.clone(),
                    created: now,
                    last_used: None,
                },
            )
            .map_err(|_| AppPasswordError::TableFull)?;
        Ok(secret)
    }

    /// Revokes `name`'s app password labelled `label` (ignoring ASCII case).
    pub fn revoke_app_password(&mut self, name: &str, label: &str) -> Result<(), AppPasswordError> {
        let owner = self.position(name).ok_or(AppPasswordError::UnknownUser)? as u32;
        let index = self
            .app_passwords
            .iter()
            .position(|a| a.owner == owner && a.label.eq_ignore_ascii_case(label))
            .ok_or(AppPasswordError::UnknownLabel)?;
        self.app_passwords.remove(index);
        Ok(())
    }

    /// `name`'s app passwords, oldest first (empty for an unknown user).
    pub fn app_passwords<'t>(&'t self, name: &str) -> impl Iterator<Item = &'t AppPassword> + 't {
        let owner = self.position(name).map(|i| i as u32);
        self.app_passwords
            .iter()
            .filter(move |a| Some(a.owner) == owner)
    }

    /// How many app passwords the table holds, for all users.
    pub fn app_password_count(&self) -> usize {
        self.app_passwords.len()
    }

    /// Which app password (an index for [`UserTable::record_app_password_use`]) of `name`'s
    /// `candidate` is, if any. Every app password in the table is compared, in constant time,
    /// whatever matches.
    pub fn check_app_password(&self, name: &str, candidate: &[u8]) -> Option<usize> {
        let owner = self.position(name)? as u32;
        first_match(
            self.app_passwords
                .iter()
                .map(|a| a.matches(candidate) & a.owner.ct_eq(&owner)),
        )
    }

    /// Which of `name`'s app passwords a Subsonic token (`t` = md5(secret ‖ `salt`)) was made
    /// from. Every one of the user's app passwords is tried.
    pub fn check_app_token(
        &self,
        name: &str,
        token: &[u8; crate::subsonic::TOKEN_LEN],
        salt: &[u8],
    ) -> TokenCheck {
        let owner = self.position(name).map(|i| i as u32);
        let mut own = false;
        let found = first_match(self.app_passwords.iter().map(|a| {
            let mine = Some(a.owner) == owner;
            own |= mine;
            // Only the user's own are hashed: a token costs an MD5 per app password of theirs.
            if mine {
                a.matches_token(token, salt)
            } else {
                subtle::Choice::from(0)
            }
        }));
        match found {
            Some(index) => TokenCheck::Matched(index),
            None if own => TokenCheck::NoMatch,
            None => TokenCheck::NoAppPassword,
        }
    }

    /// The user an OpenSubsonic `apiKey` belongs to, and the app password's index. Every app
    /// password in the table is compared, in constant time, whatever matches.
    pub fn find_api_key(&self, key: &[u8]) -> Option<(&User, usize)> {
        let index = first_match(self.app_passwords.iter().map(|a| a.matches(key)))?;
        let owner = self.app_passwords.get(index)?.owner;
        Some((self.users.get(owner as usize)?, index))
    }

    /// Notes that the app password at `index` (as a check returned it) was used `now`.
    /// Returns whether the stored last-used time moved (by [`LAST_USED_GRANULARITY_SECS`] or
    /// more, or for the first time): then the shell should save the table when convenient.
    pub fn record_app_password_use(&mut self, index: usize, now: u64) -> bool {
        let Some(app) = self.app_passwords.get_mut(index) else {
            return false;
        };
        match app.last_used {
            Some(last) if now < last.saturating_add(LAST_USED_GRANULARITY_SECS) => false,
            _ => {
                app.last_used = Some(now);
                true
            }
        }
    }

    /// Writes the table as the users JSON document into `out`; returns the bytes written.
    pub fn to_json(&self, out: &mut [u8]) -> Result<usize, SaveError> {
        #[derive(Serialize)]
        struct Document<'a, const N: usize, const A: usize> {
            version: u32,
            table_id: u64,
            admin_assigned: bool,
            next_generation: u32,
            users: UsersDoc<'a, N, A>,
        }
        serde_json_core::to_slice(
            &Document {
                version: USERS_FORMAT_VERSION,
                table_id: self.table_id,
                admin_assigned: self.admin_assigned,
                next_generation: self.next_generation,
                users: UsersDoc(self),
            },
            out,
        )
        .map_err(|_| SaveError::BufferTooSmall)
    }

    /// Reads a users JSON document. Everything is checked; any fault refuses the whole
    /// document with a [`LoadError`] that names it.
    ///
    /// `admin_assigned` may be omitted; it then means "a user exists". A document that lists
    /// users is read as having had one even if it says otherwise, so a hand-edited file cannot
    /// reopen the first-user-becomes-admin rule. Likewise `next_generation` may be omitted,
    /// and is raised above every listed user's generation.
    pub fn from_json(json: &[u8]) -> Result<Self, LoadError> {
        // The parser skips unknown values by recursion, one stack frame per level: a deep
        // enough nest would overflow the stack (a crash on a host, a fault on a board).
        if json_depth_exceeds(json, MAX_JSON_DEPTH) {
            return Err(LoadError::NestedTooDeep);
        }
        // First the version alone, whatever the rest looks like: a document of another
        // version is reported as such, not as malformed.
        #[derive(Deserialize)]
        struct Header {
            version: Option<u32>,
        }
        let (header, _) =
            serde_json_core::from_slice::<Header>(json).map_err(LoadError::Malformed)?;
        match header.version {
            None => return Err(LoadError::MissingVersion),
            Some(OLDEST_USERS_FORMAT_VERSION..=USERS_FORMAT_VERSION) => {}
            Some(other) => return Err(LoadError::UnsupportedVersion(other)),
        }

        let mut table = Self::new();
        let mut fault = None;
        let mut unescape = [0u8; UNESCAPE_BUFFER_LEN];
        let mut deserializer = serde_json_core::de::Deserializer::new(json, Some(&mut unescape));
        let parsed = DocumentSeed {
            table: &mut table,
            fault: &mut fault,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end().map(|_| ()));
        if let Some(fault) = fault {
            return Err(fault);
        }
        parsed.map_err(LoadError::Malformed)?;
        table.admin_assigned |= !table.is_empty();
        let above_users = table.users.iter().map(|u| u.generation.wrapping_add(1));
        table.next_generation = above_users.fold(table.next_generation, u32::max);
        Ok(table)
    }
}

/// The users list of the document, each user with their app passwords.
struct UsersDoc<'a, const N: usize, const A: usize>(&'a UserTable<N, A>);

impl<const N: usize, const A: usize> Serialize for UsersDoc<'_, N, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct UserDoc<'a> {
            name: &'a Username,
            admin: bool,
            password: &'a PasswordHash,
            generation: u32,
            app_passwords: AppsDoc<'a>,
        }
        let table = self.0;
        serializer.collect_seq(table.users.iter().enumerate().map(|(i, u)| UserDoc {
            name: &u.name,
            admin: u.admin,
            password: &u.password,
            generation: u.generation,
            app_passwords: AppsDoc {
                all: &table.app_passwords,
                owner: i as u32,
            },
        }))
    }
}

struct AppsDoc<'a> {
    all: &'a [AppPassword],
    owner: u32,
}

impl Serialize for AppsDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.all.iter().filter(|a| a.owner == self.owner))
    }
}

/// The index of the first `true` among `choices`, looking at every one of them in constant
/// time.
fn first_match(choices: impl Iterator<Item = subtle::Choice>) -> Option<usize> {
    use subtle::ConditionallySelectable;
    let mut found = subtle::Choice::from(0);
    let mut at = 0u32;
    for (i, hit) in choices.enumerate() {
        let first = hit & !found;
        at = u32::conditional_select(&at, &(i as u32), first);
        found |= hit;
    }
    bool::from(found).then_some(at as usize)
}

/// Room to unescape one JSON string: the longest field (a password hash) and more.
const UNESCAPE_BUFFER_LEN: usize = 256;

/// A JSON string of at most `N` bytes, or a note that it was longer (so a long name is
/// reported as [`UsernameError::TooLong`], not as malformed JSON).
enum Bounded<const N: usize> {
    Fits(heapless::String<N>),
    TooLong,
}

impl<'de, const N: usize> Deserialize<'de> for Bounded<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<const N: usize>;
        impl<const N: usize> Visitor<'_> for BoundedVisitor<N> {
            type Value = Bounded<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let mut s = heapless::String::new();
                Ok(match s.push_str(v) {
                    Ok(()) => Bounded::Fits(s),
                    Err(_) => Bounded::TooLong,
                })
            }
        }
        deserializer.deserialize_str(BoundedVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    name: Bounded<{ crate::MAX_USERNAME_LEN }>,
    admin: bool,
    password: Bounded<PASSWORD_HASH_CAPACITY>,
    generation: u32,
    #[serde(default)]
    app_passwords: AppPasswordRecords,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppPasswordRecord {
    label: Bounded<MAX_APP_PASSWORD_LABEL_LEN>,
    secret: Bounded<{ password::GENERATED_PASSWORD_LEN }>,
    created: u64,
    last_used: Option<u64>,
}

/// Up to [`MAX_APP_PASSWORDS`] records, or a note that there were more (reported by name, not
/// as malformed JSON).
#[derive(Default)]
struct AppPasswordRecords {
    records: heapless::Vec<AppPasswordRecord, MAX_APP_PASSWORDS>,
    too_many: bool,
}

impl<'de> Deserialize<'de> for AppPasswordRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordsVisitor;
        impl<'de> Visitor<'de> for RecordsVisitor {
            type Value = AppPasswordRecords;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of app passwords")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = AppPasswordRecords::default();
                while let Some(record) = seq.next_element::<AppPasswordRecord>()? {
                    if out.records.push(record).is_err() {
                        out.too_many = true;
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(RecordsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum DocumentField {
    Version,
    TableId,
    AdminAssigned,
    NextGeneration,
    Users,
}

/// Fills a table from the document; a fault that serde cannot name is left in `fault`.
struct DocumentSeed<'t, const N: usize, const A: usize> {
    table: &'t mut UserTable<N, A>,
    fault: &'t mut Option<LoadError>,
}

impl<'de, const N: usize, const A: usize> DeserializeSeed<'de> for DocumentSeed<'_, N, A> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct(
            "UserTable",
            &[
                "version",
                "table_id",
                "admin_assigned",
                "next_generation",
                "users",
            ],
            self,
        )
    }
}

impl<'de, const N: usize, const A: usize> Visitor<'de> for DocumentSeed<'_, N, A> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a users document")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let (mut version, mut table_id, mut admin_assigned, mut next_generation, mut users) =
            (false, None, None, None, false);
        while let Some(field) = map.next_key::<DocumentField>()? {
            match field {
                DocumentField::Version if !version => {
                    // Checked by the first pass.
                    map.next_value::<u32>()?;
                    version = true;
                }
                DocumentField::TableId if table_id.is_none() => {
                    table_id = Some(map.next_value::<u64>()?);
                }
                DocumentField::AdminAssigned if admin_assigned.is_none() => {
                    admin_assigned = Some(map.next_value::<bool>()?);
                }
                DocumentField::NextGeneration if next_generation.is_none() => {
                    next_generation = Some(map.next_value::<u32>()?);
                }
                DocumentField::Users if !users => {
                    map.next_value_seed(UsersSeed {
                        table: &mut *self.table,
                        fault: &mut *self.fault,
                    })?;
                    users = true;
                }
                _ => return Err(de::Error::custom("duplicate field")),
            }
        }
        if !users {
            return Err(de::Error::missing_field("users"));
        }
        // A document written before table ids is table 0 (see the module's threats).
        self.table.table_id = table_id.unwrap_or(0);
        self.table.admin_assigned = admin_assigned.unwrap_or(false);
        self.table.next_generation = next_generation.unwrap_or(0);
        Ok(())
    }
}

struct UsersSeed<'t, const N: usize, const A: usize> {
    table: &'t mut UserTable<N, A>,
    fault: &'t mut Option<LoadError>,
}

impl<'de, const N: usize, const A: usize> DeserializeSeed<'de> for UsersSeed<'_, N, A> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, const N: usize, const AP: usize> Visitor<'de> for UsersSeed<'_, N, AP> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of users")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(record) = seq.next_element::<UserRecord>()? {
            if let Err(fault) = self.table.load_record(index, record) {
                *self.fault = Some(fault);
                return Err(de::Error::custom("invalid user"));
            }
            index += 1;
        }
        Ok(())
    }
}

impl<const N: usize, const A: usize> UserTable<N, A> {
    fn load_record(&mut self, index: usize, record: UserRecord) -> Result<(), LoadError> {
        let name = match record.name {
            Bounded::Fits(name) => parse_username(&name),
            Bounded::TooLong => Err(UsernameError::TooLong),
        }
        .map_err(|reason| LoadError::InvalidUsername { index, reason })?;
        if self.find(&name).is_some() {
            return Err(LoadError::DuplicateUser { index, name });
        }
        let password = match record.password {
            Bounded::Fits(phc) => PasswordHash::parse(&phc),
            Bounded::TooLong => Err(PasswordHashError::TooLong),
        };
        let password = match password {
            Ok(password) => password,
            Err(reason) => {
                return Err(LoadError::InvalidPasswordHash {
                    index,
                    name,
                    reason,
                });
            }
        };
        if self.users.is_full() {
            return Err(LoadError::TooManyUsers { capacity: N });
        }
        let owner = self.users.len() as u32;
        if let Err(reason) = self.load_app_passwords(owner, record.app_passwords) {
            return Err(LoadError::InvalidAppPassword {
                index,
                name,
                reason,
            });
        }
        self.users
            .push(User {
                name,
                admin: record.admin,
                password,
                generation: record.generation,
            })
            .map_err(|_| LoadError::TooManyUsers { capacity: N })
    }

    fn load_app_passwords(
        &mut self,
        owner: u32,
        records: AppPasswordRecords,
    ) -> Result<(), AppPasswordFault> {
        if records.too_many {
            return Err(AppPasswordFault::TooMany);
        }
        let first = self.app_passwords.len();
        for record in records.records {
            let app = app_password_from(owner, record, &self.app_passwords[first..])?;
            self.app_passwords
                .push(app)
                .map_err(|_| AppPasswordFault::TableFull)?;
        }
        Ok(())
    }
}

fn app_password_from(
    owner: u32,
    record: AppPasswordRecord,
    earlier: &[AppPassword],
) -> Result<AppPassword, AppPasswordFault> {
    {
        let label = match record.label {
            Bounded::Fits(label) => parse_label(&label),
            Bounded::TooLong => Err(LabelError::TooLong),
        }
        .map_err(AppPasswordFault::InvalidLabel)?;
        if earlier.iter().any(|a| a.label.eq_ignore_ascii_case(&label)) {
            return Err(AppPasswordFault::DuplicateLabel);
        }
        let secret = match record.secret {
            Bounded::Fits(secret) if is_generated_secret(&secret) => secret,
            _ => return Err(AppPasswordFault::InvalidSecret),
        };
        Ok(AppPassword {
            owner,
            label,
            secret,
            created: record.created,
            last_used: record.last_used,
        })
    }
}

/// Whether `secret` has the shape [`password::generate_password`] gives.
fn is_generated_secret(secret: &str) -> bool {
    secret.len() == password::GENERATED_PASSWORD_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{MIN_ITERATIONS, hash_password};

    const ITER: u32 = MIN_ITERATIONS;

    fn hash(password: &str, salt_byte: u8) -> PasswordHash {
        hash_password(password.as_bytes(), &salt(salt_byte), ITER).unwrap()
    }

    /// Random bytes for a generated password, all `byte`.
    fn pw(byte: u8) -> [u8; GENERATED_PASSWORD_RANDOM_LEN] {
        [byte; GENERATED_PASSWORD_RANDOM_LEN]
    }

    /// A salt, all `byte`.
    fn salt(byte: u8) -> [u8; SALT_LEN] {
        [byte; SALT_LEN]
    }

    #[test]
    fn usernames_follow_the_documented_rules() {
        assert_eq!(parse_username("alice").unwrap().as_str(), "alice");
        assert_eq!(parse_username("José Núñez").unwrap().as_str(), "José Núñez");
        assert_eq!(
            parse_username("a@b.example").unwrap().as_str(),
            "a@b.example"
        );
        assert_eq!(parse_username(&"x".repeat(64)).unwrap().len(), 64);
        assert_eq!(parse_username(""), Err(UsernameError::Empty));
        assert_eq!(parse_username(&"x".repeat(65)), Err(UsernameError::TooLong));
        // 63 ASCII bytes and one two-byte character: 65 bytes.
        assert_eq!(
            parse_username(&format!("{}é", "x".repeat(63))),
            Err(UsernameError::TooLong)
        );
        for bad in ["a\nb", "a\0", "\u{7f}x", "x\u{85}y", "tab\there"] {
            assert_eq!(
                parse_username(bad),
                Err(UsernameError::ControlCharacter),
                "{bad:?}"
            );
        }
        for bad in [" alice", "alice ", "\u{a0}alice", "alice\u{3000}"] {
            assert_eq!(
                parse_username(bad),
                Err(UsernameError::SurroundingWhitespace),
                "{bad:?}"
            );
        }
        // A name that shows as another (`admin` written right to left, a suffix hidden) or
        // looks like one that exists (a zero-width character inside).
        for bad in [
            "\u{202E}nimda",
            "alice\u{2066}x\u{2069}",
            "al\u{200B}ice",
            "al\u{200D}ice",
            "ali\u{00AD}ce",
            "\u{FEFF}alice",
            "alice\u{200F}",
            "a\u{061C}b",
            "a\u{2060}b",
        ] {
            assert_eq!(
                parse_username(bad),
                Err(UsernameError::InvisibleCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_label("ph\u{200B}one"),
            Err(LabelError::InvisibleCharacter)
        );
        // Right-to-left letters themselves are names like any other.
        assert!(parse_username("מרים").is_ok());
    }

    #[test]
    fn names_match_ignoring_ascii_case_and_are_stored_as_given() {
        let mut t = UserTable::<4>::new();
        t.add("Alice", false, hash("pw", 1)).unwrap();
        assert_eq!(t.find("alice").unwrap().name.as_str(), "Alice");
        assert_eq!(t.find("ALICE").unwrap().name.as_str(), "Alice");
        assert!(t.find("alicé").is_none());
        assert_eq!(
            t.add("aLiCe", false, hash("pw", 2)),
            Err(UserError::Duplicate)
        );
        // Non-ASCII letters are not folded.
        t.add("ÉVE", false, hash("pw", 3)).unwrap();
        t.add("éve", false, hash("pw", 4)).unwrap();
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn add_refuses_invalid_names_and_a_full_table() {
        let mut t = UserTable::<2>::new();
        assert_eq!(
            t.add(" bob", false, hash("pw", 1)),
            Err(UserError::InvalidName(UsernameError::SurroundingWhitespace))
        );
        assert!(t.is_empty());
        t.add("a", false, hash("pw", 1)).unwrap();
        t.add("b", false, hash("pw", 1)).unwrap();
        assert!(t.is_full());
        assert_eq!(t.add("c", false, hash("pw", 1)), Err(UserError::TableFull));
        assert_eq!(t.capacity(), 2);
        let names: Vec<_> = t.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn remove_takes_the_user_out_and_frees_the_slot() {
        let mut t = UserTable::<1>::new();
        t.add("a", false, hash("pw", 1)).unwrap();
        assert_eq!(t.remove("A").unwrap().name.as_str(), "a");
        assert_eq!(t.remove("a"), Err(UserError::UnknownUser));
        assert!(t.find("a").is_none());
        t.add("b", false, hash("pw", 1)).unwrap();
    }

    #[test]
    fn set_password_replaces_the_hash_and_bumps_the_generation() {
        let mut t = UserTable::<2>::new();
        t.add("a", false, hash("old", 1)).unwrap();
        assert_eq!(t.generation_of("a"), Some(0));
        assert_eq!(t.set_password("A", hash("new", 2)), Ok(1));
        assert_eq!(t.generation_of("a"), Some(1));
        assert!(t.authenticate("a", b"new", ITER).is_ok());
        assert_eq!(
            t.authenticate("a", b"old", ITER),
            Err(LoginError::WrongPassword)
        );
        assert_eq!(
            t.set_password("nobody", hash("x", 1)),
            Err(UserError::UnknownUser)
        );
        assert_eq!(t.generation_of("nobody"), None);
    }

    #[test]
    fn bump_generation_revokes_without_changing_the_password() {
        let mut t = UserTable::<2>::new();
        t.add("a", false, hash("pw", 1)).unwrap();
        assert_eq!(t.bump_generation("a"), Ok(1));
        assert_eq!(t.bump_generation("a"), Ok(2));
        assert!(t.authenticate("a", b"pw", ITER).is_ok());
        assert_eq!(t.bump_generation("b"), Err(UserError::UnknownUser));
    }

    #[test]
    fn a_user_created_again_does_not_get_an_old_generation_back() {
        let mut t = UserTable::<2>::new();
        assert_eq!(t.add("bob", false, hash("pw", 1)).unwrap().generation, 0);
        t.remove("bob").unwrap();
        assert_eq!(t.add("Bob", false, hash("pw", 1)).unwrap().generation, 1);
        t.remove("bob").unwrap();
        let again = t.provision("bob", &pw(1), &salt(1), ITER).unwrap();
        assert_eq!(again.user.generation, 2);
        assert_eq!(t.next_generation(), 3);
    }

    #[test]
    fn a_missing_or_low_next_generation_is_raised_above_every_user() {
        let h = hash("pw", 1);
        let json = format!(
            r#"{{"version":1,"next_generation":2,"users":[{{"name":"a","admin":false,"password":"{h}","generation":9}},{{"name":"b","admin":false,"password":"{h}","generation":4}}]}}"#,
            h = h.as_str()
        );
        let mut t = UserTable::<4>::from_json(json.as_bytes()).unwrap();
        assert_eq!(t.next_generation(), 10);
        assert_eq!(t.bump_generation("b"), Ok(10));
        let json = format!(
            r#"{{"version":1,"users":[{{"name":"a","admin":false,"password":"{h}","generation":5}}]}}"#,
            h = h.as_str()
        );
        assert_eq!(
            UserTable::<4>::from_json(json.as_bytes())
                .unwrap()
                .next_generation(),
            6
        );
        let json = br#"{"version":1,"next_generation":7,"users":[]}"#;
        assert_eq!(
            UserTable::<4>::from_json(json).unwrap().next_generation(),
            7
        );
    }

    #[test]
    fn a_revocation_never_hands_back_the_generation_it_revokes() {
        // Reachable only once the counter has wrapped; staged here by setting it directly.
        let mut t = UserTable::<2>::new();
        t.add("a", false, hash("pw", 1)).unwrap();
        t.next_generation = 0;
        assert_eq!(t.bump_generation("a"), Ok(1));
        assert_eq!(t.next_generation(), 2);
    }

    #[test]
    fn generation_wraps_instead_of_overflowing() {
        let json = format!(
            r#"{{"version":1,"users":[{{"name":"a","admin":false,"password":"{}","generation":4294967295}}]}}"#,
            hash("pw", 1).as_str()
        );
        let mut t = UserTable::<1>::from_json(json.as_bytes()).unwrap();
        assert_eq!(t.bump_generation("a"), Ok(0));
    }

    #[test]
    fn authenticate_distinguishes_unknown_user_and_wrong_password_for_the_log() {
        let mut t = UserTable::<2>::new();
        t.add("alice", false, hash("secret", 1)).unwrap();
        assert_eq!(
            t.authenticate("ALICE", b"secret", ITER)
                .unwrap()
                .name
                .as_str(),
            "alice"
        );
        assert_eq!(
            t.authenticate("alice", b"Secret", ITER),
            Err(LoginError::WrongPassword)
        );
        assert_eq!(
            t.authenticate("bob", b"secret", ITER),
            Err(LoginError::UnknownUser)
        );
    }

    #[test]
    fn change_password_follows_the_user_editing_policy() {
        let mut t = UserTable::<4>::new();
        t.add("root", true, hash("r", 1)).unwrap();
        t.add("ann", false, hash("a", 1)).unwrap();
        t.add("ben", false, hash("b", 1)).unwrap();

        // Generations come from one counter: root 0, ann 1, ben 2.
        // Editing enabled: a user may change their own password, never someone else's.
        assert_eq!(t.change_password("ann", "ANN", hash("a2", 2), true), Ok(3));
        assert_eq!(
            t.change_password("ann", "ben", hash("x", 2), true),
            Err(UserError::NotAdmin)
        );
        // Editing disabled: not even their own.
        assert_eq!(
            t.change_password("ann", "ann", hash("a3", 3), false),
            Err(UserError::UserEditingDisabled)
        );
        assert!(t.authenticate("ann", b"a2", ITER).is_ok());
        // Asked beforehand, the same answers, and nothing changes.
        assert_eq!(
            t.may_change_password("ann", "ann", false),
            Err(UserError::UserEditingDisabled)
        );
        assert_eq!(t.may_change_password("ann", "ann", true), Ok(()));
        assert_eq!(
            t.may_change_password("ann", "ben", true),
            Err(UserError::NotAdmin)
        );
        assert_eq!(t.may_change_password("root", "ann", false), Ok(()));
        assert_eq!(
            t.may_change_password("root", "nobody", true),
            Err(UserError::UnknownUser)
        );
        assert_eq!(t.generation_of("ann"), Some(3));
        // Admins may change anyone's, their own included, whatever the setting.
        assert_eq!(
            t.change_password("root", "ben", hash("b2", 2), false),
            Ok(4)
        );
        assert_eq!(
            t.change_password("root", "root", hash("r2", 2), false),
            Ok(5)
        );
        assert_eq!(t.generation_of("ann"), Some(3));
        assert!(t.authenticate("ben", b"b2", ITER).is_ok());
        // Unknown actor or target.
        assert_eq!(
            t.change_password("ghost", "ann", hash("x", 2), true),
            Err(UserError::UnknownUser)
        );
        assert_eq!(
            t.change_password("root", "ghost", hash("x", 2), true),
            Err(UserError::UnknownUser)
        );
    }

    #[test]
    fn set_admin_grants_and_removes_rights() {
        let mut t = UserTable::<2>::new();
        t.add("a", false, hash("pw", 1)).unwrap();
        t.set_admin("A", true).unwrap();
        assert!(t.find("a").unwrap().admin);
        t.set_admin("a", false).unwrap();
        assert!(!t.find("a").unwrap().admin);
        assert_eq!(t.set_admin("b", true), Err(UserError::UnknownUser));
    }

    #[test]
    fn provisioning_makes_the_first_user_ever_admin_and_no_one_after() {
        let mut t = UserTable::<4>::new();
        assert!(!t.admin_assigned());
        let first = t.provision("alice", &pw(1), &salt(1), ITER).unwrap();
        assert!(first.created);
        assert!(first.user.admin);
        assert_eq!(first.user.generation, 0);
        let second = t.provision("bob", &pw(2), &salt(2), ITER).unwrap();
        assert!(second.created);
        assert!(!second.user.admin);
        // Seen again, in another case: the same user, nothing created.
        let again = t.provision("ALICE", &pw(3), &salt(3), ITER).unwrap();
        assert!(!again.created);
        assert_eq!(again.user.name.as_str(), "alice");

        // Deleting everyone does not reopen the rule.
        t.remove("alice").unwrap();
        t.remove("bob").unwrap();
        assert!(t.is_empty());
        assert!(t.admin_assigned());
        let later = t.provision("mallory", &pw(4), &salt(4), ITER).unwrap();
        assert!(!later.user.admin);
    }

    #[test]
    fn a_user_added_first_uses_up_the_first_user_rule() {
        let mut t = UserTable::<4>::new();
        t.add("operator", false, hash("pw", 1)).unwrap();
        assert!(t.admin_assigned());
        assert!(
            !t.provision("alice", &pw(1), &salt(1), ITER)
                .unwrap()
                .user
                .admin
        );
    }

    #[test]
    fn provisioned_passwords_are_random_and_unknown() {
        let mut t = UserTable::<4>::new();
        t.provision("a", &pw(1), &salt(1), ITER).unwrap();
        t.provision("b", &pw(2), &salt(2), ITER).unwrap();
        let (a, b) = (t.find("a").unwrap(), t.find("b").unwrap());
        assert_ne!(a.password, b.password);
        for guess in [&b""[..], b"a", b"password"] {
            assert_eq!(
                t.authenticate("a", guess, ITER),
                Err(LoginError::WrongPassword)
            );
        }
        // The password is the generated one for the first 18 random bytes.
        let secret = password::generate_password(&[1; GENERATED_PASSWORD_RANDOM_LEN]);
        assert!(t.authenticate("a", secret.as_bytes(), ITER).is_ok());
    }

    #[test]
    fn provisioning_refuses_bad_names_full_tables_and_bad_iterations() {
        let mut t = UserTable::<1>::new();
        assert_eq!(
            t.provision("", &pw(1), &salt(1), ITER).map(|p| p.created),
            Err(UserError::InvalidName(UsernameError::Empty))
        );
        assert_eq!(
            t.provision("a", &pw(1), &salt(1), 1).map(|p| p.created),
            Err(UserError::PasswordHash(
                PasswordHashError::IterationsOutOfRange
            ))
        );
        assert!(!t.admin_assigned(), "a failed provisioning creates no one");
        t.provision("a", &pw(1), &salt(1), ITER).unwrap();
        assert_eq!(
            t.provision("b", &pw(2), &salt(2), ITER).map(|p| p.created),
            Err(UserError::TableFull)
        );
        // An existing user is still found when the table is full.
        assert!(!t.provision("A", &pw(2), &salt(2), ITER).unwrap().created);
    }

    fn sample_table() -> UserTable<4> {
        let mut t = UserTable::<4>::new();
        t.provision("alice", &pw(1), &salt(1), ITER).unwrap();
        t.add("Bob \"the\" \\builder\\", false, hash("pw", 2))
            .unwrap();
        t.add("Zoë", false, hash("pw", 3)).unwrap();
        t.bump_generation("bob \"the\" \\builder\\").unwrap();
        t
    }

    #[test]
    fn json_round_trips() {
        let t = sample_table();
        let mut buf = [0u8; UserTable::<4>::JSON_CAPACITY];
        let n = t.to_json(&mut buf).unwrap();
        let json = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(json.starts_with(r#"{"version":2,"table_id":0,"admin_assigned":true,"next_generation":4,"users":[{"name":"alice","admin":true,"password":"$pbkdf2-sha256$i=1000,l=32$"#), "{json}");
        assert!(
            json.contains(r#""name":"Bob \"the\" \\builder\\","admin":false,"#),
            "{json}"
        );
        assert!(json.contains(r#""next_generation":4,"#), "{json}");
        assert!(
            json.contains(r#""generation":3,"app_passwords":[]}"#),
            "{json}"
        );
        let back = UserTable::<4>::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, t);
    }

    /// A table made anew gets an id of its own that the JSON keeps; a document written
    /// before table ids loads as table 0, and a new table never is table 0.
    #[test]
    fn the_table_id_is_random_kept_in_the_json_and_zero_for_old_documents() {
        let mut t = UserTable::<2>::with_id([9, 8, 7, 6, 5, 4, 3, 2]);
        assert_eq!(t.table_id(), u64::from_le_bytes([9, 8, 7, 6, 5, 4, 3, 2]));
        assert_eq!(UserTable::<2>::with_id([0; 8]).table_id(), 1);
        t.add("a", true, hash("pw", 1)).unwrap();
        let mut buf = [0u8; UserTable::<2>::JSON_CAPACITY];
        let n = t.to_json(&mut buf).unwrap();
        let json = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(json.contains(r#""table_id":144964032628459529,"#), "{json}");
        let back = UserTable::<2>::from_json(&buf[..n]).unwrap();
        assert_eq!(back.table_id(), t.table_id());
        let old = json.replace(r#""table_id":144964032628459529,"#, "");
        assert_eq!(
            UserTable::<2>::from_json(old.as_bytes())
                .unwrap()
                .table_id(),
            0
        );
        t.renew_id([1; 8]);
        assert_eq!(t.table_id(), u64::from_le_bytes([1; 8]));
        assert!(t.find("a").is_some(), "a new id keeps the users");
        // The largest id fits the room reserved for the JSON around the users.
        let mut full = UserTable::<1>::with_id([0xff; 8]);
        full.add(&"\"".repeat(64), true, hash("pw", 1)).unwrap();
        for _ in 0..3 {
            full.bump_generation(&"\"".repeat(64)).unwrap();
        }
        let mut buf = [0u8; UserTable::<1>::JSON_CAPACITY];
        let n = full.to_json(&mut buf).unwrap();
        assert_eq!(
            UserTable::<1>::from_json(&buf[..n]).unwrap().table_id(),
            u64::MAX
        );
    }

    #[test]
    fn json_round_trips_an_empty_table_that_had_users() {
        let mut t = UserTable::<2>::new();
        t.add("a", true, hash("pw", 1)).unwrap();
        t.remove("a").unwrap();
        let mut buf = [0u8; UserTable::<2>::JSON_CAPACITY];
        let n = t.to_json(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            br#"{"version":2,"table_id":0,"admin_assigned":true,"next_generation":1,"users":[]}"#
        );
        let mut back = UserTable::<2>::from_json(&buf[..n]).unwrap();
        assert!(back.admin_assigned());
        assert!(back.is_empty());
        // The counter survives the round trip: a new "a" does not get generation 0 back.
        assert_eq!(back.add("a", true, hash("pw", 1)).unwrap().generation, 1);
    }

    #[test]
    fn a_full_table_of_worst_case_users_fits_json_capacity() {
        // The longest hash: 160 bytes (a 64-byte salt and a 31-byte output).
        let longest_hash = PasswordHash::parse(&format!(
            "$pbkdf2-sha256$i=10000000,l=31${}${}",
            "A".repeat(86),
            "A".repeat(42)
        ))
        .unwrap();
        assert_eq!(longest_hash.as_str().len(), PASSWORD_HASH_CAPACITY);
        let mut t = UserTable::<3, 24>::new();
        for i in 0..3 {
            // 64 bytes, 63 of which are quotes that JSON escapes to two bytes each.
            let name = format!("{i}{}", "\"".repeat(63));
            t.add(&name, true, longest_hash.clone()).unwrap();
            for j in 0..MAX_APP_PASSWORDS {
                // 32 bytes, 31 of them backslashes that JSON escapes to two bytes each.
                let label = format!("{j}{}", "\\".repeat(31));
                t.add_app_password(&name, &label, &[i as u8; 18], u64::MAX)
                    .unwrap();
            }
        }
        for u in t.users.iter_mut() {
            u.generation = u32::MAX;
        }
        for index in 0..t.app_password_count() {
            assert!(t.record_app_password_use(index, u64::MAX));
        }
        let mut buf = [0u8; UserTable::<3, 24>::JSON_CAPACITY];
        let n = t.to_json(&mut buf).unwrap();
        assert_eq!(UserTable::<3, 24>::from_json(&buf[..n]).unwrap(), t);
        // One byte short of the document is refused, not truncated.
        let mut short = vec![0u8; n - 1];
        assert_eq!(t.to_json(&mut short), Err(SaveError::BufferTooSmall));
    }

    #[test]
    fn loading_accepts_any_field_order_whitespace_and_escapes() {
        let h = hash("pw", 1);
        let json = format!(
            "{{ \"users\" : [ {{ \"generation\": 7, \"password\": \"{}\", \"admin\": false, \"name\": \"Ren\\u00e9e\" }} ],\n \"admin_assigned\": false, \"version\": 1 }}",
            h.as_str()
        );
        let t = UserTable::<2>::from_json(json.as_bytes()).unwrap();
        let u = t.find("renée").unwrap();
        assert_eq!(u.name.as_str(), "Renée");
        assert_eq!(u.generation, 7);
        assert!(!u.admin);
        // A listed user means a user has existed, whatever the flag says.
        assert!(t.admin_assigned());
    }

    #[test]
    fn admin_assigned_defaults_to_whether_users_exist() {
        let t = UserTable::<2>::from_json(br#"{"version":1,"users":[]}"#).unwrap();
        assert!(!t.admin_assigned());
        let t = UserTable::<2>::from_json(br#"{"version":1,"admin_assigned":true,"users":[]}"#)
            .unwrap();
        assert!(t.admin_assigned());
    }

    #[test]
    fn users_json_deep_nesting_is_an_error_not_a_stack_overflow() {
        for depth in [MAX_JSON_DEPTH, 1_000, 100_000] {
            let mut doc = String::from(r#"{"version":1,"x":"#);
            doc.push_str(&"[".repeat(depth));
            doc.push_str(&"]".repeat(depth));
            doc.push_str(r#","users":[]}"#);
            // A small stack, like a board's task: a recursive skip of the nest would overflow it.
            let result = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || UserTable::<4>::from_json(doc.as_bytes()))
                .unwrap()
                .join();
            assert!(
                matches!(result, Ok(Err(LoadError::NestedTooDeep))),
                "depth {depth}: {result:?}"
            );
        }
        // Brackets inside strings are not nesting.
        let name = "[".repeat(40) + "{";
        assert!(!json_depth_exceeds(
            format!(r#"{{"a":"{name}"[[["}}"#).as_bytes(),
            MAX_JSON_DEPTH
        ));
    }

    #[test]
    fn every_load_error_is_named() {
        let h = hash("pw", 1);
        let h = h.as_str();
        let user = |name: &str| {
            format!(r#"{{"name":"{name}","admin":false,"password":"{h}","generation":0}}"#)
        };
        let doc = |users: &[String]| format!(r#"{{"version":1,"users":[{}]}}"#, users.join(","));

        let malformed = |json: &str| {
            matches!(
                UserTable::<2>::from_json(json.as_bytes()),
                Err(LoadError::Malformed(_))
            )
        };
        assert!(malformed(""));
        assert!(malformed("not json"));
        assert!(malformed("[]"));
        assert!(malformed(r#"{"version":1}"#), "users is required");
        assert!(malformed(r#"{"version":1,"users":{}}"#));
        assert!(malformed(r#"{"version":1,"users":[]} trailing"#));
        assert!(malformed(r#"{"version":1,"users":[],"extra":0}"#));
        assert!(malformed(r#"{"version":1,"users":[],"users":[]}"#));
        assert!(malformed(
            r#"{"version":1,"admin_assigned":"yes","users":[]}"#
        ));
        assert!(malformed(&doc(&[format!(
            r#"{{"name":"a","admin":false,"password":"{h}"}}"#
        )])));
        assert!(malformed(&doc(&[format!(
            r#"{{"name":"a","admin":false,"password":"{h}","generation":-1}}"#
        )])));
        assert!(malformed(&doc(&[format!(
            r#"{{"name":"a","admin":false,"password":"{h}","generation":0,"role":"x"}}"#
        )])));
        assert!(malformed(&doc(&[user("a")])[..40]));

        let load = |json: &str| UserTable::<2>::from_json(json.as_bytes());
        assert_eq!(load(r#"{"users":[]}"#), Err(LoadError::MissingVersion));
        assert_eq!(
            load(r#"{"version":3,"users":"whatever v3 is"}"#),
            Err(LoadError::UnsupportedVersion(3))
        );
        assert_eq!(
            load(&doc(&[user("a"), user("b"), user("c")])),
            Err(LoadError::TooManyUsers { capacity: 2 })
        );
        assert_eq!(
            load(&doc(&[user("a"), user(" b")])),
            Err(LoadError::InvalidUsername {
                index: 1,
                reason: UsernameError::SurroundingWhitespace
            })
        );
        assert_eq!(
            load(&doc(&[user("")])),
            Err(LoadError::InvalidUsername {
                index: 0,
                reason: UsernameError::Empty
            })
        );
        assert_eq!(
            load(&doc(&[user(&"x".repeat(65))])),
            Err(LoadError::InvalidUsername {
                index: 0,
                reason: UsernameError::TooLong
            })
        );
        assert_eq!(
            load(&doc(&[user("a\\u0007")])),
            Err(LoadError::InvalidUsername {
                index: 0,
                reason: UsernameError::ControlCharacter
            })
        );
        assert_eq!(
            load(&doc(&[user("Ann"), user("aNN")])),
            Err(LoadError::DuplicateUser {
                index: 1,
                name: parse_username("aNN").unwrap()
            })
        );
        let bad_hash =
            doc(&[r#"{"name":"a","admin":false,"password":"$md5$x","generation":0}"#.into()]);
        assert_eq!(
            load(&bad_hash),
            Err(LoadError::InvalidPasswordHash {
                index: 0,
                name: parse_username("a").unwrap(),
                reason: PasswordHashError::UnknownScheme
            })
        );
        let long_hash = doc(&[format!(
            r#"{{"name":"a","admin":false,"password":"{}","generation":0}}"#,
            "$".repeat(PASSWORD_HASH_CAPACITY + 1)
        )]);
        assert_eq!(
            load(&long_hash),
            Err(LoadError::InvalidPasswordHash {
                index: 0,
                name: parse_username("a").unwrap(),
                reason: PasswordHashError::TooLong
            })
        );
    }

    #[test]
    fn app_passwords_are_added_listed_and_revoked() {
        let mut t = UserTable::<2>::new();
        t.add("alice", false, hash("pw", 1)).unwrap();
        let phone = t.add_app_password("ALICE", "phone", &pw(7), 100).unwrap();
        assert_eq!(phone, password::generate_password(&pw(7)));
        assert_eq!(phone.len(), password::GENERATED_PASSWORD_LEN);
        let car = t.add_app_password("alice", "car", &pw(8), 200).unwrap();
        assert_ne!(phone, car);
        let list: Vec<_> = t.app_passwords("alice").collect();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].label.as_str(), "phone");
        assert_eq!((list[0].created, list[0].last_used), (100, None));
        assert!(
            !format!("{:?}", list[0]).contains(phone.as_str()),
            "Debug hides the secret"
        );

        assert_eq!(
            t.add_app_password("alice", "Phone", &pw(9), 300),
            Err(AppPasswordError::DuplicateLabel)
        );
        assert_eq!(
            t.add_app_password("bob", "phone", &pw(9), 300),
            Err(AppPasswordError::UnknownUser)
        );
        assert_eq!(
            t.add_app_password("alice", " x", &pw(9), 300),
            Err(AppPasswordError::InvalidLabel(
                LabelError::SurroundingWhitespace
            ))
        );
        assert_eq!(
            t.add_app_password("alice", &"x".repeat(33), &pw(9), 300),
            Err(AppPasswordError::InvalidLabel(LabelError::TooLong))
        );
        assert_eq!(
            t.add_app_password("alice", "", &pw(9), 300),
            Err(AppPasswordError::InvalidLabel(LabelError::Empty))
        );
        for i in 2..MAX_APP_PASSWORDS {
            t.add_app_password("alice", &format!("device {i}"), &pw(i as u8 + 20), 300)
                .unwrap();
        }
        assert_eq!(
            t.add_app_password("alice", "one more", &pw(99), 300),
            Err(AppPasswordError::Full)
        );

        assert_eq!(t.check_app_password("alice", phone.as_bytes()), Some(0));
        assert_eq!(t.check_app_password("alice", car.as_bytes()), Some(1));
        t.revoke_app_password("alice", "PHONE").unwrap();
        assert_eq!(t.check_app_password("alice", phone.as_bytes()), None);
        assert_eq!(t.check_app_password("alice", car.as_bytes()), Some(0));
        assert_eq!(
            t.revoke_app_password("alice", "phone"),
            Err(AppPasswordError::UnknownLabel)
        );
        assert_eq!(
            t.revoke_app_password("nobody", "car"),
            Err(AppPasswordError::UnknownUser)
        );
    }

    #[test]
    fn app_passwords_check_passwords_tokens_and_api_keys() {
        let mut t = UserTable::<3>::new();
        t.add("alice", false, hash("pw", 1)).unwrap();
        t.add("bob", true, hash("pw", 2)).unwrap();
        t.add("carol", false, hash("pw", 3)).unwrap();
        let a1 = t.add_app_password("alice", "phone", &pw(1), 0).unwrap();
        let a2 = t.add_app_password("alice", "car", &pw(2), 0).unwrap();
        let b1 = t.add_app_password("bob", "laptop", &pw(3), 0).unwrap();

        // As a password: only the user's own, never the login password.
        assert_eq!(t.check_app_password("alice", a2.as_bytes()), Some(1));
        assert_eq!(t.check_app_password("alice", b1.as_bytes()), None);
        assert_eq!(t.check_app_password("alice", b"pw"), None);
        assert_eq!(t.check_app_password("alice", b""), None);
        assert_eq!(t.check_app_password("ghost", a1.as_bytes()), None);

        // As the Subsonic token secret.
        let salt = b"c19b2d";
        let token = crate::subsonic::token(a1.as_bytes(), salt);
        assert_eq!(
            t.check_app_token("ALICE", &token, salt),
            TokenCheck::Matched(0)
        );
        assert_eq!(
            t.check_app_token("alice", &token, b"other"),
            TokenCheck::NoMatch
        );
        assert_eq!(t.check_app_token("bob", &token, salt), TokenCheck::NoMatch);
        assert_eq!(
            t.check_app_token("carol", &token, salt),
            TokenCheck::NoAppPassword
        );
        assert_eq!(
            t.check_app_token("ghost", &token, salt),
            TokenCheck::NoAppPassword
        );

        // As an API key, found among every user's.
        let (user, index) = t.find_api_key(b1.as_bytes()).unwrap();
        assert_eq!((user.name.as_str(), index), ("bob", 2));
        let (user, index) = t.find_api_key(a2.as_bytes()).unwrap();
        assert_eq!((user.name.as_str(), index), ("alice", 1));
        assert!(t.find_api_key(b"pw").is_none());
        assert!(t.find_api_key(&a1.as_bytes()[..23]).is_none());
        assert!(UserTable::<1>::new().find_api_key(a1.as_bytes()).is_none());

        // Removing a user takes their app passwords; the others keep their owners.
        t.remove("alice").unwrap();
        assert_eq!(t.app_password_count(), 1);
        assert!(t.find_api_key(a1.as_bytes()).is_none());
        let (user, index) = t.find_api_key(b1.as_bytes()).unwrap();
        assert_eq!((user.name.as_str(), index), ("bob", 0));
        assert_eq!(t.check_app_password("bob", b1.as_bytes()), Some(0));
        t.add("alice", false, hash("pw", 1)).unwrap();
        assert_eq!(
            t.check_app_password("alice", a1.as_bytes()),
            None,
            "not revived"
        );
        assert_eq!(t.app_passwords("alice").count(), 0);
        assert_eq!(t.app_passwords("bob").count(), 1);

        // The table-wide capacity is its own limit.
        let mut small = UserTable::<2, 1>::new();
        small.add("a", false, hash("pw", 1)).unwrap();
        small.add_app_password("a", "one", &pw(1), 0).unwrap();
        assert_eq!(
            small.add_app_password("a", "two", &pw(2), 0),
            Err(AppPasswordError::TableFull)
        );
    }

    #[test]
    fn last_use_is_recorded_coarsely() {
        let mut t = UserTable::<1>::new();
        t.add("alice", false, hash("pw", 1)).unwrap();
        t.add_app_password("alice", "phone", &pw(1), 10).unwrap();
        assert!(t.record_app_password_use(0, 1000));
        assert!(!t.record_app_password_use(0, 1000 + LAST_USED_GRANULARITY_SECS - 1));
        assert_eq!(
            t.app_passwords("alice").next().unwrap().last_used,
            Some(1000)
        );
        assert!(t.record_app_password_use(0, 1000 + LAST_USED_GRANULARITY_SECS));
        assert!(!t.record_app_password_use(1, 5000), "no such index");
    }

    #[test]
    fn app_passwords_survive_the_json_and_version_1_still_loads() {
        let mut t = UserTable::<2>::new();
        t.add("alice", false, hash("pw", 1)).unwrap();
        let secret = t
            .add_app_password("alice", "phone \"1\"", &pw(5), 100)
            .unwrap();
        t.record_app_password_use(0, 5000);
        let mut buf = [0u8; UserTable::<2>::JSON_CAPACITY];
        let n = t.to_json(&mut buf).unwrap();
        let json = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            json.contains(&format!(
                r#""app_passwords":[{{"label":"phone \"1\"","secret":"{secret}","created":100,"last_used":5000}}]"#
            )),
            "{json}"
        );
        let back = UserTable::<2>::from_json(&buf[..n]).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.check_app_password("alice", secret.as_bytes()), Some(0));

        // A version 1 document (no app passwords) loads, and is saved as version 2.
        let v1 = format!(
            r#"{{"version":1,"admin_assigned":true,"next_generation":1,"users":[{{"name":"alice","admin":true,"password":"{}","generation":0}}]}}"#,
            hash("pw", 1).as_str()
        );
        let old = UserTable::<2>::from_json(v1.as_bytes()).unwrap();
        assert_eq!(old.app_passwords("alice").count(), 0);
        let n = old.to_json(&mut buf).unwrap();
        assert!(buf[..n].starts_with(br#"{"version":2,"#));
        assert!(old.authenticate("alice", b"pw", ITER).is_ok());
    }

    #[test]
    fn bad_app_passwords_in_a_document_are_named() {
        let h = hash("pw", 1);
        let doc = |apps: &str| {
            format!(
                r#"{{"version":2,"users":[{{"name":"a","admin":false,"password":"{}","generation":0,"app_passwords":[{apps}]}}]}}"#,
                h.as_str()
            )
        };
        let app = |label: &str, secret: &str| {
            format!(r#"{{"label":"{label}","secret":"{secret}","created":1,"last_used":null}}"#)
        };
        let good = "AAAAAAAAAAAAAAAAAAAAAAAA";
        let fault = |apps: &str| match UserTable::<2>::from_json(doc(apps).as_bytes()) {
            Err(LoadError::InvalidAppPassword {
                index: 0, reason, ..
            }) => Some(reason),
            other => panic!("{other:?}"),
        };
        assert!(UserTable::<2>::from_json(doc(&app("x", good)).as_bytes()).is_ok());
        assert_eq!(
            fault(&[app("x", good), app("X", good)].join(",")),
            Some(AppPasswordFault::DuplicateLabel)
        );
        assert_eq!(
            fault(&app("x", "short")),
            Some(AppPasswordFault::InvalidSecret)
        );
        assert_eq!(
            fault(&app("x", "AAAAAAAAAAAAAAAAAAAAAAA+")),
            Some(AppPasswordFault::InvalidSecret)
        );
        assert_eq!(
            fault(&app("x", &"A".repeat(40))),
            Some(AppPasswordFault::InvalidSecret)
        );
        assert_eq!(
            fault(&app("", good)),
            Some(AppPasswordFault::InvalidLabel(LabelError::Empty))
        );
        assert_eq!(
            fault(&app(&"x".repeat(40), good)),
            Some(AppPasswordFault::InvalidLabel(LabelError::TooLong))
        );
        let many: Vec<String> = (0..=MAX_APP_PASSWORDS)
            .map(|i| app(&format!("d{i}"), good))
            .collect();
        assert_eq!(fault(&many.join(",")), Some(AppPasswordFault::TooMany));
        assert!(matches!(
            UserTable::<2, 1>::from_json(
                doc(&[app("x", good), app("y", good)].join(",")).as_bytes()
            ),
            Err(LoadError::InvalidAppPassword {
                reason: AppPasswordFault::TableFull,
                ..
            })
        ));
        let never_used = doc(r#"{"label":"x","secret":"AAAAAAAAAAAAAAAAAAAAAAAA","created":1}"#);
        let t = UserTable::<2>::from_json(never_used.as_bytes()).unwrap();
        assert_eq!(t.app_passwords("a").next().unwrap().last_used, None);
        let unknown_field = doc(&app("x", good).replace("\"created\"", "\"role\":1,\"created\""));
        assert!(matches!(
            UserTable::<2>::from_json(unknown_field.as_bytes()),
            Err(LoadError::Malformed(_))
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn loader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = UserTable::<4>::from_json(&bytes);
            }

            #[test]
            fn loader_never_panics_on_json_shaped_input(
                version in prop_oneof![Just("1".to_string()), "[0-9a-z\"-]{0,6}"],
                name in "[a-zA-Z \\\\\"\\pL\\pC]{0,80}",
                password in "[$a-z0-9=,A-Z+/]{0,180}",
                admin in "(true|false|null|1)",
                generation in "-?[0-9]{0,12}",
                extra in "[,\\]}{\\[ ]{0,4}",
            ) {
                let json = format!(
                    r#"{{"version":{version},"users":[{{"name":"{name}","admin":{admin},"password":"{password}","generation":{generation}}}{extra}]}}"#
                );
                let _ = UserTable::<4>::from_json(json.as_bytes());
            }

            #[test]
            fn saved_tables_load_back_unchanged(
                names in proptest::collection::vec("[a-zA-Z0-9\"\\\\é]{1,20}", 0..4),
                admins in proptest::collection::vec(any::<bool>(), 4),
            ) {
                let mut t = UserTable::<4>::new();
                for (name, admin) in names.iter().zip(admins) {
                    let _ = t.add(name, admin, hash("pw", 1));
                }
                let mut buf = [0u8; UserTable::<4>::JSON_CAPACITY];
                let n = t.to_json(&mut buf).unwrap();
                prop_assert_eq!(UserTable::<4>::from_json(&buf[..n]).unwrap(), t);
            }

            #[test]
            fn app_passwords_load_back_with_their_owners(
                apps in proptest::collection::vec(
                    (0usize..3, "[a-zA-Z0-9 \"\\\\é]{1,12}", any::<[u8; 18]>(), any::<u64>(), proptest::option::of(any::<u64>())),
                    0..12,
                ),
                removed in proptest::option::of(0usize..3),
            ) {
                let mut t = UserTable::<3, 8>::new();
                for name in ["ann", "ben", "cy"] {
                    t.add(name, false, hash("pw", 1)).unwrap();
                }
                let names = ["ann", "ben", "cy"];
                let mut secrets = Vec::new();
                for (owner, label, random, created, used) in &apps {
                    if let Ok(secret) = t.add_app_password(names[*owner], label, random, *created) {
                        if let (Some(at), Some(index)) =
                            (used, t.check_app_password(names[*owner], secret.as_bytes()))
                        {
                            t.record_app_password_use(index, *at);
                        }
                        secrets.push((names[*owner], secret));
                    }
                }
                if let Some(r) = removed {
                    t.remove(names[r]).unwrap();
                }
                let mut buf = [0u8; UserTable::<3, 8>::JSON_CAPACITY];
                let n = t.to_json(&mut buf).unwrap();
                let back = UserTable::<3, 8>::from_json(&buf[..n]).unwrap();
                prop_assert_eq!(&back, &t);
                for (owner, secret) in &secrets {
                    let gone = removed.is_some_and(|r| names[r] == *owner);
                    let found = back.find_api_key(secret.as_bytes()).map(|(u, _)| u.name.to_string());
                    if gone {
                        prop_assert_eq!(found, None);
                    } else {
                        prop_assert_eq!(found.as_deref(), Some(*owner));
                        prop_assert!(back.check_app_password(owner, secret.as_bytes()).is_some());
                    }
                }
            }
        }
    }
}
