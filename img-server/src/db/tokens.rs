//! API tokens: only a SHA-256 of each secret is stored, with its user and scope.

use super::schema::api_tokens;
use super::{now_ms, with_conn, Db, DbResult};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct Token {
    pub name: String,
    pub hash: String,
    pub created_at: i64,
    /// Whose jobs the token acts on (one user may hold several tokens).
    pub user_name: String,
    /// `submit`, `admin` or `worker` (see `auth::Scope`).
    pub scope: String,
}

pub fn insert(db: &Db, name: &str, user: &str, scope: &str, hash: &str) -> DbResult<bool> {
    let row = Token {
        name: name.to_owned(),
        hash: hash.to_owned(),
        created_at: now_ms(),
        user_name: user.to_owned(),
        scope: scope.to_owned(),
    };
    let n = with_conn!(db, |conn| diesel::insert_into(api_tokens::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(conn))?;
    Ok(n == 1)
}

pub fn list(db: &Db) -> DbResult<Vec<Token>> {
    Ok(with_conn!(db, |conn| api_tokens::table.order(api_tokens::name).select(Token::as_select()).load(conn))?)
}

pub fn remove(db: &Db, name: &str) -> DbResult<bool> {
    let n = with_conn!(db, |conn| diesel::delete(api_tokens::table.filter(api_tokens::name.eq(name))).execute(conn))?;
    Ok(n == 1)
}

/// The token whose secret hashes to `hash`.
pub fn find(db: &Db, hash: &str) -> DbResult<Option<Token>> {
    Ok(with_conn!(db, |conn| api_tokens::table
        .filter(api_tokens::hash.eq(hash))
        .select(Token::as_select())
        .first(conn)
        .optional())?)
}
