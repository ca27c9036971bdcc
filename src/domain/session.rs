//! A login, as its user sees it in the list of their sessions.

use chrono::{DateTime, Utc};

/// A session as its user sees it in the list.
pub struct Session {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}
