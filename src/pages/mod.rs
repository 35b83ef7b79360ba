//! Views only: each page reads state and calls the auth client.

pub mod home;
