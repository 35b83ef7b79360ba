//! User accounts in SQLite.

use sqlx::SqlitePool;

use crate::clock::{rfc3339, Millis};

use super::model::User;
use super::password::PasswordHashString;
use super::validate::Email;

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub created_at: i64,
}

impl UserRow {
    pub fn to_user(&self) -> User {
        User {
            id: self.id.clone(),
            email: self.email.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

/// An account with its password hash, for login only.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    pub id: String,
    pub email: String,
    pub created_at: i64,
    pub password_hash: String,
}

impl Credentials {
    pub fn into_row(self) -> UserRow {
        UserRow {
            id: self.id,
            email: self.email,
            created_at: self.created_at,
        }
    }
}

pub enum CreateError {
    EmailTaken,
    Database(sqlx::Error),
}

pub async fn create(
    pool: &SqlitePool,
    email: &Email,
    hash: &PasswordHashString,
    now: Millis,
) -> Result<UserRow, CreateError> {
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.display.clone(),
        created_at: now,
    };
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&row.id)
    .bind(&row.email)
    .bind(&email.key)
    .bind(&hash.0)
    .bind(now)
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(row),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateError::EmailTaken),
        Err(e) => Err(CreateError::Database(e)),
    }
}

pub async fn credentials(
    pool: &SqlitePool,
    email_key: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, created_at, password_hash FROM users WHERE email_key = ?")
        .bind(email_key)
        .fetch_optional(pool)
        .await
}
