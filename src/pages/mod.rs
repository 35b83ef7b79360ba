//! Views only: each page reads the auth client's signals and calls it.

pub mod account;
pub mod credentials;
pub mod dashboard;
pub mod history;
pub mod home;
pub mod sessions;
pub mod widgets;
