//! The server API (section 14): who may call it (the admin bearer token),
//! and what its requests mean (a kick's target, a server broadcast's body),
//! as values every target turns into the same HTTP answers.

mod auth;
mod error;
mod kick;
mod request;
mod space;

pub use auth::{authorize, Access, AdminToken, Method};
pub use error::ApiError;
pub use kick::{kick, removed};
pub use request::{parse_broadcast, removed_json, KickTarget};
pub use space::{admit_roster, request_space};
