//! The published stage scripts with their publishers, as every stage move needs them,
//! cached in each instance.
//!
//! A move runs the scripts of the stage it leaves and the stage it enters. Reading them
//! (and who published them: a script runs with its publisher's permissions) cost two
//! statements per move although they change only when a manager publishes. The cache is
//! never trusted for a write: the move's transaction reads the [`Stamp`]s of both stages
//! again in one small statement, and a move decided on scripts that have changed since
//! (published or archived on another instance, a publisher deactivated or given another
//! role) is decided again. What is read outside a move (a deal's guidance) may be up to
//! [`FRESH_FOR`] old when the change happened on another instance.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use accord_entities::stage_script::{self, ScriptStatus};
use accord_entities::user::{self, Role};
use sea_orm::sea_query::{Expr, ExprTrait, Func, JoinType, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait};

use crate::error::AppResult;
use crate::services::rows::Reader;

/// How long a cached entry answers reads outside a move's transaction.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// A stage's published script and its publisher as they are now.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub script: stage_script::Model,
    /// `None` when the user who published it (or wrote it) is gone.
    pub publisher: Option<Publisher>,
}

/// The user a script runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publisher {
    pub id: i64,
    pub role: Role,
    pub active: bool,
}

/// What a move was decided on, for one stage: its published script (if any) and that
/// script's publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub stage_id: i64,
    pub script_id: Option<i64>,
    pub publisher: Option<Publisher>,
}

impl Stamp {
    /// The stamp of `stage_id` given its published script (`None`: it has none).
    pub fn of(stage_id: i64, published: Option<&Published>) -> Stamp {
        Stamp {
            stage_id,
            script_id: published.map(|p| p.script.id),
            publisher: published.and_then(|p| p.publisher),
        }
    }
}

struct Entry {
    published: Option<Arc<Published>>,
    loaded: Instant,
}

#[derive(Default)]
struct Entries {
    by_stage: HashMap<i64, Entry>,
    /// Bumped by every [`PublishedScripts::forget`], so that a read that started before
    /// it does not put back what it forgot.
    generation: u64,
}

/// The per-instance cache of published scripts by stage.
#[derive(Default)]
pub struct PublishedScripts {
    entries: RwLock<Entries>,
}

impl PublishedScripts {
    /// The published scripts of `stage_ids` (at most one per stage, in no particular
    /// order), from the cache where fresh, the rest in one statement.
    pub async fn of<C: ConnectionTrait>(
        &self,
        db: &C,
        stage_ids: &[i64],
    ) -> AppResult<Vec<Arc<Published>>> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let generation = {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            for &stage in stage_ids {
                match entries.by_stage.get(&stage) {
                    Some(e) if e.loaded.elapsed() < FRESH_FOR => {
                        found.extend(e.published.iter().cloned());
                    }
                    _ => missing.push(stage),
                }
            }
            entries.generation
        };
        if missing.is_empty() {
            return Ok(found);
        }
        let loaded: Vec<Arc<Published>> = load(db, &missing)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.generation == generation {
            let now = Instant::now();
            for stage in missing {
                let published = loaded.iter().find(|p| p.script.stage_id == stage).cloned();
                entries.by_stage.insert(
                    stage,
                    Entry {
                        published,
                        loaded: now,
                    },
                );
            }
        }
        found.extend(loaded);
        Ok(found)
    }

    /// Whether the stages of `ran_on` still have the scripts (and publishers) it
    /// records, read now; if not, the cache forgets those stages.
    pub async fn still<C: ConnectionTrait>(&self, db: &C, ran_on: &[Stamp]) -> AppResult<bool> {
        let stages: Vec<i64> = ran_on.iter().map(|s| s.stage_id).collect();
        if stamps(db, &stages).await? == ran_on {
            return Ok(true);
        }
        self.forget(&stages);
        Ok(false)
    }

    /// Drops what the cache holds for `stage_ids`: their scripts changed.
    pub fn forget(&self, stage_ids: &[i64]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.generation += 1;
        for stage in stage_ids {
            entries.by_stage.remove(stage);
        }
    }
}

/// The published scripts of `stage_ids` with their publishers, read now.
pub async fn load<C: ConnectionTrait>(db: &C, stage_ids: &[i64]) -> AppResult<Vec<Published>> {
    let mut statement = published_joined(stage_ids);
    use stage_script::Column as S;
    for column in [
        S::Id,
        S::StageId,
        S::Version,
        S::Source,
        S::Status,
        S::Note,
        S::AuthorId,
        S::CreatedAt,
        S::PublishedAt,
        S::PublishedBy,
        S::ArchivedAt,
    ] {
        statement.column((stage_script::Entity, column));
    }
    select_publisher(&mut statement);
    let mut found = Vec::new();
    for row in db.query_all(&statement).await? {
        let mut r = Reader::new(&row);
        let script = stage_script::Model {
            id: r.take()?,
            stage_id: r.take()?,
            version: r.take()?,
            source: r.take()?,
            status: r.take()?,
            note: r.take()?,
            author_id: r.take()?,
            created_at: r.take()?,
            published_at: r.take()?,
            published_by: r.take()?,
            archived_at: r.take()?,
        };
        found.push(Published {
            script,
            publisher: read_publisher(&mut r)?,
        });
    }
    Ok(found)
}

/// The stamps of `stage_ids` as they are now (in the order given): what a move's
/// transaction compares with what its decision ran on.
pub async fn stamps<C: ConnectionTrait>(db: &C, stage_ids: &[i64]) -> AppResult<Vec<Stamp>> {
    let mut statement = published_joined(stage_ids);
    statement
        .column((stage_script::Entity, stage_script::Column::Id))
        .column((stage_script::Entity, stage_script::Column::StageId));
    select_publisher(&mut statement);
    let mut now: HashMap<i64, Stamp> = HashMap::new();
    for row in db.query_all(&statement).await? {
        let mut r = Reader::new(&row);
        let script_id: i64 = r.take()?;
        let stage_id: i64 = r.take()?;
        now.insert(
            stage_id,
            Stamp {
                stage_id,
                script_id: Some(script_id),
                publisher: read_publisher(&mut r)?,
            },
        );
    }
    Ok(stage_ids
        .iter()
        .map(|&stage| {
            now.remove(&stage).unwrap_or(Stamp {
                stage_id: stage,
                script_id: None,
                publisher: None,
            })
        })
        .collect())
}

/// A condition, for the move's own `UPDATE`, that holds while the scripts published
/// for the stages of `ran_on` are exactly those (and run by the same publishers, in
/// the same role and state). The transaction re-checks the decision without a
/// statement of its own; when the update writes nothing, [`stamps`] tells whether this
/// is why.
///
/// One subquery tallies the scripts published for those stages now: 1 for each that
/// matches a stamp, one more than the number of stages for each that does not. The
/// tally equals the number of scripts `ran_on` names only when every published script
/// matches a stamp and there are that many of them (a stage has at most one published
/// script), since a single mismatch already exceeds it.
pub fn unchanged(ran_on: &[Stamp]) -> Condition {
    let stages: Vec<i64> = ran_on.iter().map(|s| s.stage_id).collect();
    let expected: Vec<&Stamp> = ran_on.iter().filter(|s| s.script_id.is_some()).collect();
    let mut same = Condition::any();
    for stamp in &expected {
        let mut matches = Condition::all()
            .add(stage_script::Column::Id.eq(stamp.script_id))
            .add(stage_script::Column::StageId.eq(stamp.stage_id));
        matches = match stamp.publisher {
            Some(p) => matches
                .add(user::Column::Id.eq(p.id))
                .add(user::Column::Role.eq(p.role))
                .add(user::Column::Active.eq(p.active)),
            None => matches.add(user::Column::Id.is_null()),
        };
        same = same.add(matches);
    }
    // An empty `any` condition is false: with no stamp to match, every row mismatches.
    let mismatch = stages.len() as i64 + 1;
    let per_script = Expr::case(same, Expr::val(1i64)).finally(Expr::val(mismatch));
    let mut tally = published_joined(&stages);
    tally.expr(Func::coalesce([
        Expr::from(Func::sum(per_script)),
        Expr::val(0i64),
    ]));
    Condition::all().add(Expr::from(tally).eq(expected.len() as i64))
}

/// `stage_scripts` published for `stage_ids`, joined with the user each runs as (its
/// publisher, or its author if it has none recorded); no columns selected yet.
fn published_joined(stage_ids: &[i64]) -> SelectStatement {
    let mut statement = Query::select();
    statement
        .from(stage_script::Entity)
        .join(
            JoinType::LeftJoin,
            user::Entity,
            Expr::col((user::Entity, user::Column::Id)).eq(Func::coalesce([
                Expr::col((stage_script::Entity, stage_script::Column::PublishedBy)),
                Expr::col((stage_script::Entity, stage_script::Column::AuthorId)),
            ])),
        )
        .and_where(stage_script::Column::StageId.is_in(stage_ids.iter().copied()))
        .and_where(stage_script::Column::Status.eq(ScriptStatus::Published));
    statement
}

fn select_publisher(statement: &mut SelectStatement) {
    statement
        .column((user::Entity, user::Column::Id))
        .column((user::Entity, user::Column::Role))
        .column((user::Entity, user::Column::Active));
}

fn read_publisher(r: &mut Reader<'_>) -> AppResult<Option<Publisher>> {
    let id: Option<i64> = r.take()?;
    let role: Option<Role> = r.take()?;
    let active: Option<bool> = r.take()?;
    Ok(match (id, role, active) {
        (Some(id), Some(role), Some(active)) => Some(Publisher { id, role, active }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sea_orm::{Database, DatabaseConnection};

    /// Stages 5 and 6; script 1 published on 5 by user 7 (a manager), script 2 a draft
    /// on 6.
    async fn two_stages() -> DatabaseConnection {
        use accord_migration::MigratorTrait;
        let db = Database::connect("sqlite::memory:").await.unwrap();
        accord_migration::Migrator::up(&db, None).await.unwrap();
        for sql in [
            "INSERT INTO users (id, email, display_name, role, password_hash, active, created_at, updated_at) \
             VALUES (7, 'm@example.com', 'Max', 'sales_manager', NULL, 1, '2026-01-02T03:04:05Z', '2026-01-02T03:04:05Z')",
            "INSERT INTO pipelines (id, name, created_at, updated_at, version) VALUES (3, 'P', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1)",
            "INSERT INTO stages (id, pipeline_id, name, position, probability, kind) VALUES \
             (5, 3, 'Qualify', 0, 10, 'open'), (6, 3, 'Proposal', 1, 50, 'open')",
            "INSERT INTO stage_scripts (id, stage_id, version, source, status, author_id, created_at, published_at, published_by) VALUES \
             (1, 5, 1, 'checklist(\"a\");', 'published', 7, '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z', 7), \
             (2, 6, 1, 'checklist(\"b\");', 'draft', 7, '2026-01-03T00:00:00Z', NULL, NULL)",
        ] {
            db.execute_unprepared(sql).await.expect(sql);
        }
        db
    }

    async fn holds(db: &DatabaseConnection, ran_on: &[Stamp]) -> bool {
        let mut probe = Query::select();
        probe.expr(Expr::val(1)).cond_where(unchanged(ran_on));
        db.query_one(&probe).await.unwrap().is_some()
    }

    fn stamp(stage_id: i64, script_id: Option<i64>, role: Role, active: bool) -> Stamp {
        Stamp {
            stage_id,
            script_id,
            publisher: script_id.map(|_| Publisher {
                id: 7,
                role,
                active,
            }),
        }
    }

    /// The move's re-check holds exactly while the scripts and their publishers are
    /// those the decision ran on.
    #[tokio::test]
    async fn unchanged_holds_only_for_the_scripts_a_move_was_decided_on() {
        let db = two_stages().await;
        let manager = Role::SalesManager;
        let as_decided = [
            stamp(5, Some(1), manager, true),
            stamp(6, None, manager, true),
        ];
        assert!(holds(&db, &as_decided).await);
        assert_eq!(stamps(&db, &[5, 6]).await.unwrap(), as_decided);
        // Decided on another script, on no script, or with the publisher in another
        // role or state.
        for first in [
            stamp(5, Some(9), manager, true),
            stamp(5, None, manager, true),
            stamp(5, Some(1), Role::Admin, true),
            stamp(5, Some(1), manager, false),
        ] {
            assert!(!holds(&db, &[first, as_decided[1]]).await, "{first:?}");
        }
        // A script published since on the other stage; then both archived. Each time
        // the decision no longer holds, and one made on what is there now does.
        for (change, now) in [
            (
                "UPDATE stage_scripts SET status = 'published', published_by = 7 WHERE id = 2",
                [
                    stamp(5, Some(1), manager, true),
                    stamp(6, Some(2), manager, true),
                ],
            ),
            (
                "UPDATE stage_scripts SET status = 'archived'",
                [stamp(5, None, manager, true), stamp(6, None, manager, true)],
            ),
        ] {
            db.execute_unprepared(change).await.unwrap();
            assert!(!holds(&db, &as_decided).await, "{change}");
            assert!(holds(&db, &now).await, "{change}");
        }
    }
}
