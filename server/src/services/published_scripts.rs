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
/// the same role and state): as many scripts are published for those stages as
/// `ran_on` names, and that many of them match a stamp. The transaction re-checks the
/// decision without a statement of its own; when the update writes nothing,
/// [`stamps`] tells whether this is why.
pub fn unchanged(ran_on: &[Stamp]) -> Condition {
    let stages: Vec<i64> = ran_on.iter().map(|s| s.stage_id).collect();
    let count = || Expr::col((stage_script::Entity, stage_script::Column::Id)).count();
    let mut published = published_joined(&stages);
    published.expr(count());
    let expected: Vec<&Stamp> = ran_on.iter().filter(|s| s.script_id.is_some()).collect();
    let published_now = Expr::from(published).eq(expected.len() as i64);
    if expected.is_empty() {
        return Condition::all().add(published_now);
    }
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
    let mut matching = published_joined(&stages);
    matching.expr(count()).cond_where(same);
    Condition::all()
        .add(published_now)
        .add(Expr::from(matching).eq(expected.len() as i64))
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
