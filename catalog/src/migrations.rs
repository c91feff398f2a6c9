//! The schema, as numbered migrations compiled into the binary (`catalog/migrations/`), applied
//! in order when the catalog opens. A migration once released is never edited: a change is a
//! new file. Each must run unchanged on SQLite and PostgreSQL.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlStr};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "assets", include_str!("../migrations/0001_assets.sql")),
    (2, "uploads", include_str!("../migrations/0002_uploads.sql")),
    (
        3,
        "progress",
        include_str!("../migrations/0003_progress.sql"),
    ),
    (
        4,
        "input_url",
        include_str!("../migrations/0004_input_url.sql"),
    ),
    (
        5,
        "upload_stored",
        include_str!("../migrations/0005_upload_stored.sql"),
    ),
];

pub async fn run(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations).run(pool).await
}
