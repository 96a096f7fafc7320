//! Stage scripts: their versions and lifecycle (draft, publish, archive, roll back),
//! testing them (validate, dry-run, replay against history), and what they do when a
//! deal moves (guard, actions). Scripts only ever run in the sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use accord_entities::lead::{Grade, LeadSource};
use accord_entities::opportunity_contact_role as role;
use accord_entities::stage::{self, StageKind};
use accord_entities::stage_script::{self, ScriptStatus};
use accord_entities::task::{self, TaskKind, TaskStatus};
use accord_entities::territory_membership::{self as membership, AccessLevel};
use accord_entities::user::Role;
use accord_entities::{
    account, contact, note, opportunity, pipeline, reminder, stage_transition, user,
};
use accord_workflows::context::{
    AccountView, ActivityView, CommitteeView, ContactRoleView, DealView, ENGAGED_DAYS,
    TransitionView, UserView,
};
use accord_workflows::engine::{MAX_SOURCE_BYTES, Reads};
use accord_workflows::{
    Action, Anchor, Diagnostic, Event, Outcome, Recipient, SettableField, StageContext,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use crate::auth::Actor;
use crate::authz::scope::ReadView;
use crate::authz::{Action as Permission, Resource, Scope};
use crate::db::{WriteBatch, begin_write, serialize_on};
use crate::error::{AppError, AppResult};
use crate::sandbox::{Lane, Run, SandboxError};
use crate::services::published_scripts::{self, Published, Stamp};
use crate::services::validate::optional_text;
use crate::services::{Services, audit};
use crate::services::{org_chart, reminders};

/// The most recent stage moves a script sees in `history`.
pub const HISTORY_MAX: usize = 50;
/// Longest version note, in characters.
pub const NOTE_MAX: usize = 500;

fn money(micros: i64) -> Decimal {
    Decimal::new(micros, 6).normalize()
}

/// A sandbox answer as diagnostics; a sandbox that cannot run at all is an internal error.
pub(super) fn problems(err: SandboxError) -> AppResult<Vec<Diagnostic>> {
    match err {
        SandboxError::Script(problems) | SandboxError::Busy(problems) => Ok(problems),
        SandboxError::Unavailable(reason) => Err(AppError::internal(anyhow::anyhow!(reason))),
    }
}

pub(super) fn describe(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.line > 0 {
                p.to_string()
            } else {
                p.message.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) async fn stage_and_pipeline<C: ConnectionTrait>(
    db: &C,
    stage_id: i64,
) -> AppResult<(stage::Model, pipeline::Model)> {
    let stage = stage::Entity::find_by_id(stage_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("stage"))?;
    let pipeline = pipeline::Entity::find_by_id(stage.pipeline_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("pipeline"))?;
    Ok((stage, pipeline))
}

/// Admins, and the sales managers responsible for the pipeline, edit its scripts.
pub(super) async fn require_editor(
    svc: &Services,
    actor: &Actor,
    pipeline: &pipeline::Model,
) -> AppResult<()> {
    svc.authz
        .require(actor, Resource::StageScript, Permission::Write)
        .await?;
    if crate::authz::may_edit_scripts(actor, pipeline.manager_id) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "only admins and the manager responsible for the {} pipeline may edit its scripts",
            pipeline.name
        )))
    }
}

/// Compiles `source` and dry-runs it against sample deals (entering, leaving, looking),
/// so that errors on the paths a sample takes show up before publishing.
pub async fn check(svc: &Services, source: &str) -> AppResult<Vec<Diagnostic>> {
    if let Err(err) = svc.sandbox.compile(Lane::Authoring, source).await {
        return problems(err);
    }
    for event in [Event::Enter, Event::Exit, Event::Guidance] {
        if let Err(err) = svc
            .sandbox
            .evaluate(
                Lane::Authoring,
                source,
                StageContext::sample(event, "Sample"),
            )
            .await
        {
            return Ok(problems(err)?
                .into_iter()
                .map(|p| Diagnostic {
                    message: format!("on a sample deal ({}): {}", event.as_str(), p.message),
                    ..p
                })
                .collect());
        }
    }
    Ok(Vec::new())
}

/// `check` for the people who write scripts (admins and sales managers): running
/// drafts takes sandbox time, which reps have no reason to spend.
pub async fn validate(svc: &Services, actor: &Actor, source: &str) -> AppResult<Vec<Diagnostic>> {
    svc.authz
        .require(actor, Resource::StageScript, Permission::Write)
        .await?;
    check(svc, source).await
}

fn source_text(source: &str) -> AppResult<&str> {
    if source.trim().is_empty() {
        return Err(AppError::validation("source", "a script must not be empty"));
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(AppError::validation(
            "source",
            format!(
                "a script may be at most {MAX_SOURCE_BYTES} bytes, this one has {}",
                source.len()
            ),
        ));
    }
    Ok(source)
}

/// Saves a new draft version of a stage's script. Drafts may have problems (they are
/// returned with it); publishing one may not.
pub async fn save_draft(
    svc: &Services,
    actor: &Actor,
    stage_id: i64,
    source: String,
    note: Option<String>,
) -> AppResult<(stage_script::Model, Vec<Diagnostic>)> {
    let (_, pipeline) = stage_and_pipeline(&svc.db, stage_id).await?;
    require_editor(svc, actor, &pipeline).await?;
    source_text(&source)?;
    let note = optional_text("note", note.as_deref(), NOTE_MAX)?;
    let found = check(svc, &source).await?;
    let txn = begin_write(&svc.db).await?;
    serialize_on(&txn, "stage-scripts", stage_id).await?;
    let latest: Option<i32> = stage_script::Entity::find()
        .select_only()
        .column_as(stage_script::Column::Version.max(), "latest")
        .filter(stage_script::Column::StageId.eq(stage_id))
        .into_tuple::<Option<i32>>()
        .one(&txn)
        .await?
        .flatten();
    let saved = stage_script::ActiveModel {
        id: NotSet,
        stage_id: Set(stage_id),
        version: Set(latest.unwrap_or(0) + 1),
        source: Set(source),
        status: Set(ScriptStatus::Draft),
        note: Set(note),
        author_id: Set(Some(actor.user_id)),
        created_at: Set(Utc::now()),
        published_at: Set(None),
        published_by: Set(None),
        archived_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        Some(actor),
        "save_draft",
        "StageScript",
        saved.id,
        None::<&stage_script::Model>,
        Some(&saved),
    )
    .await?;
    txn.commit().await?;
    Ok((saved, found))
}

pub async fn get(svc: &Services, actor: &Actor, id: i64) -> AppResult<stage_script::Model> {
    svc.authz
        .require(actor, Resource::StageScript, Permission::Read)
        .await?;
    stage_script::Entity::find_by_id(id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("stage script"))
}

/// Every version of a stage's script, newest first.
pub async fn versions(
    svc: &Services,
    actor: &Actor,
    stage_id: i64,
) -> AppResult<Vec<stage_script::Model>> {
    svc.authz
        .require(actor, Resource::StageScript, Permission::Read)
        .await?;
    Ok(stage_script::Entity::find()
        .filter(stage_script::Column::StageId.eq(stage_id))
        .order_by_desc(stage_script::Column::Version)
        .all(&svc.db)
        .await?)
}

/// The version that runs for a stage, if any, read now.
pub async fn published<C: ConnectionTrait>(
    db: &C,
    stage_id: i64,
) -> AppResult<Option<stage_script::Model>> {
    Ok(stage_script::Entity::find()
        .filter(stage_script::Column::StageId.eq(stage_id))
        .filter(stage_script::Column::Status.eq(ScriptStatus::Published))
        .one(db)
        .await?)
}

/// Makes a version the one that runs (a draft, or an older version: a rollback). The
/// version published before it is archived in the same transaction.
pub async fn publish(svc: &Services, actor: &Actor, id: i64) -> AppResult<stage_script::Model> {
    let script = get(svc, actor, id).await?;
    let (_, pipeline) = stage_and_pipeline(&svc.db, script.stage_id).await?;
    require_editor(svc, actor, &pipeline).await?;
    if script.status == ScriptStatus::Published {
        return Err(AppError::Conflict(format!(
            "version {} is already published",
            script.version
        )));
    }
    let found = check(svc, &script.source).await?;
    if !found.is_empty() {
        return Err(AppError::validation(
            "id",
            format!(
                "version {} has problems and cannot be published: {}",
                script.version,
                describe(&found)
            ),
        ));
    }
    let now = Utc::now();
    let txn = begin_write(&svc.db).await?;
    serialize_on(&txn, "stage-scripts", script.stage_id).await?;
    if let Some(current) = published(&txn, script.stage_id).await? {
        let mut archived: stage_script::ActiveModel = current.into();
        archived.status = Set(ScriptStatus::Archived);
        archived.archived_at = Set(Some(now));
        archived.update(&txn).await?;
    }
    let mut active: stage_script::ActiveModel = script.clone().into();
    active.status = Set(ScriptStatus::Published);
    active.published_at = Set(Some(now));
    active.published_by = Set(Some(actor.user_id));
    active.archived_at = Set(None);
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "publish",
        "StageScript",
        id,
        Some(&script),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    svc.scripts.forget(&[after.stage_id]);
    Ok(after)
}

/// Archives a version; archiving the published one leaves the stage without a script.
pub async fn archive(svc: &Services, actor: &Actor, id: i64) -> AppResult<stage_script::Model> {
    let script = get(svc, actor, id).await?;
    let (_, pipeline) = stage_and_pipeline(&svc.db, script.stage_id).await?;
    require_editor(svc, actor, &pipeline).await?;
    if script.status == ScriptStatus::Archived {
        return Err(AppError::Conflict(format!(
            "version {} is already archived",
            script.version
        )));
    }
    let txn = begin_write(&svc.db).await?;
    serialize_on(&txn, "stage-scripts", script.stage_id).await?;
    let mut active: stage_script::ActiveModel = script.clone().into();
    active.status = Set(ScriptStatus::Archived);
    active.archived_at = Set(Some(Utc::now()));
    let after = active.update(&txn).await?;
    audit::record(
        &txn,
        Some(actor),
        "archive",
        "StageScript",
        id,
        Some(&script),
        Some(&after),
    )
    .await?;
    txn.commit().await?;
    svc.scripts.forget(&[after.stage_id]);
    Ok(after)
}

/// A deal with the records a script sees of it directly: its account and its owner.
#[derive(Debug, Clone)]
pub(crate) struct Parties {
    pub(crate) deal: opportunity::Model,
    pub(crate) account: Option<account::Model>,
    pub(crate) owner: Option<user::Model>,
}

/// `deals` with their accounts and owners, in two statements.
pub(super) async fn with_parties<C: ConnectionTrait>(
    db: &C,
    deals: Vec<opportunity::Model>,
) -> AppResult<Vec<Parties>> {
    let account_ids: Vec<i64> = deals.iter().map(|d| d.account_id).collect();
    let accounts: HashMap<i64, account::Model> = account::Entity::find()
        .filter(account::Column::Id.is_in(account_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let owner_ids: Vec<i64> = deals.iter().map(|d| d.owner_id).collect();
    let owners: HashMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(owner_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(deals
        .into_iter()
        .map(|deal| Parties {
            account: accounts.get(&deal.account_id).cloned(),
            owner: owners.get(&deal.owner_id).cloned(),
            deal,
        })
        .collect())
}

/// Where a deal stands for a script: the facts, before any move.
pub(super) struct DealFacts {
    pub(super) deal: opportunity::Model,
    stage_name: String,
    probability: i32,
    account: Option<account::Model>,
    owner: Option<user::Model>,
    roles: Vec<ContactRoleView>,
    history: Vec<stage_transition::Model>,
    notes: Vec<DateTime<Utc>>,
    committee: CommitteeView,
}

/// Loads the facts of `deals` in a few statements, whatever their number. Accounts and
/// contacts any of the `viewers` may not read stay out: a script sees at most what both
/// its publisher and the person moving (or looking at, or testing) the deal may see.
/// Only the parts the scripts to run can read (`reads`) are loaded; the others stay
/// empty. The buying committee costs a handful of statements per deal; it is today's,
/// even in a replay.
pub(super) async fn facts<C: ConnectionTrait>(
    db: &C,
    viewers: &[&Scope],
    stages: &Stages,
    deals: Vec<Parties>,
    reads: Reads,
) -> AppResult<Vec<DealFacts>> {
    let sees = |territory: Option<i64>| {
        viewers
            .iter()
            .all(|v| v.allows(territory, AccessLevel::Read))
    };
    let ids: Vec<i64> = deals.iter().map(|d| d.deal.id).collect();
    let mut roles: HashMap<i64, Vec<ContactRoleView>> = HashMap::new();
    if reads.roles {
        for (r, c) in role::Entity::find()
            .filter(role::Column::OpportunityId.is_in(ids.clone()))
            .find_also_related(contact::Entity)
            .all(db)
            .await?
        {
            let Some(c) = c.filter(|c| sees(c.territory_id)) else {
                continue;
            };
            roles
                .entry(r.opportunity_id)
                .or_default()
                .push(ContactRoleView {
                    contact: format!("{} {}", c.first_name, c.last_name),
                    title: c.title,
                    role: r.role.to_value(),
                    primary: r.is_primary,
                });
        }
    }
    let mut history: HashMap<i64, Vec<stage_transition::Model>> = HashMap::new();
    if reads.history {
        // One deal (a move, a dry run) needs only the latest moves a script is shown;
        // several (a replay) need all of them, to cut each at its own moment.
        let rows = stage_transition::Entity::find()
            .filter(stage_transition::Column::OpportunityId.is_in(ids.clone()))
            .order_by_desc(stage_transition::Column::TransitionedAt)
            .order_by_desc(stage_transition::Column::Id)
            .apply_if(
                (ids.len() == 1).then_some(HISTORY_MAX as u64),
                QuerySelect::limit,
            )
            .all(db)
            .await?;
        for t in rows.into_iter().rev() {
            history.entry(t.opportunity_id).or_default().push(t);
        }
    }
    let mut notes: HashMap<i64, Vec<DateTime<Utc>>> = HashMap::new();
    if reads.activity {
        for (deal, at) in note::Entity::find()
            .select_only()
            .column(note::Column::OpportunityId)
            .column(note::Column::CreatedAt)
            .filter(note::Column::OpportunityId.is_in(ids))
            .order_by_asc(note::Column::CreatedAt)
            .into_tuple::<(Option<i64>, DateTime<Utc>)>()
            .all(db)
            .await?
        {
            if let Some(deal) = deal {
                notes.entry(deal).or_default().push(at);
            }
        }
    }
    let mut committees: HashMap<i64, CommitteeView> = HashMap::new();
    if reads.committee {
        let view = ReadView::of(viewers);
        let now = Utc::now();
        for d in &deals {
            let c = org_chart::committee_of(db, &view, d.deal.clone(), ENGAGED_DAYS, now).await?;
            committees.insert(d.deal.id, committee_view(&c));
        }
    }
    Ok(deals
        .into_iter()
        .map(
            |Parties {
                 deal,
                 account,
                 owner,
             }| {
                let stage = stages.get(&deal.stage_id);
                DealFacts {
                    committee: committees.remove(&deal.id).unwrap_or_default(),
                    stage_name: stage.map(|s| s.name.clone()).unwrap_or_default(),
                    probability: stage.map_or(0, |s| s.probability),
                    account: account.filter(|a| sees(a.territory_id)),
                    owner,
                    roles: roles.remove(&deal.id).unwrap_or_default(),
                    history: history.remove(&deal.id).unwrap_or_default(),
                    notes: notes.remove(&deal.id).unwrap_or_default(),
                    deal,
                }
            },
        )
        .collect())
}

/// Every stage by id: loaded once per request, for names and probabilities.
pub(crate) type Stages = HashMap<i64, stage::Model>;

pub(super) async fn stages<C: ConnectionTrait>(db: &C) -> AppResult<Stages> {
    Ok(stage::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect())
}

pub(super) fn stage_name(stages: &Stages, id: i64) -> Option<String> {
    stages.get(&id).map(|s| s.name.clone())
}

/// The context of `facts` as it stood at `at` (history and activity up to then).
pub(super) fn context(
    facts: &DealFacts,
    names: &Stages,
    event: Event,
    stage: &str,
    at: DateTime<Utc>,
) -> StageContext {
    context_from(
        facts,
        names,
        event,
        stage,
        at,
        Some(facts.stage_name.clone()),
    )
}

fn context_from(
    facts: &DealFacts,
    names: &Stages,
    event: Event,
    stage: &str,
    at: DateTime<Utc>,
    from_stage: Option<String>,
) -> StageContext {
    let d = &facts.deal;
    let upto = facts.history.partition_point(|t| t.transitioned_at <= at);
    let history: Vec<TransitionView> = facts.history[upto.saturating_sub(HISTORY_MAX)..upto]
        .iter()
        .map(|t| TransitionView {
            from: t.from_stage_id.and_then(|s| stage_name(names, s)),
            to: stage_name(names, t.to_stage_id).unwrap_or_default(),
            at: t.transitioned_at,
            days_in_previous: t.seconds_in_previous_stage.map(|s| s / 86_400),
        })
        .collect();
    let notes: Vec<&DateTime<Utc>> = facts.notes.iter().filter(|n| **n <= at).collect();
    StageContext {
        event,
        now: at,
        from_stage,
        stage: stage.to_owned(),
        deal: DealView {
            id: d.id.to_string(),
            name: d.name.clone(),
            amount: money(d.amount_micros),
            currency: d.currency.clone(),
            expected_close_date: Some(d.expected_close_date),
            source: d.source.map(|s| s.to_value()),
            grade: d.grade.map(|g| g.to_value()),
            stage: facts.stage_name.clone(),
            probability: facts.probability,
            stage_entered_at: d.stage_entered_at,
            created_at: d.created_at,
        },
        account: facts.account.as_ref().map(|a| AccountView {
            name: a.name.clone(),
            industry: a.industry.clone(),
            country: a.country.clone(),
            region: a.region.clone(),
            size: a.size.map(|s| s.to_value()),
            annual_revenue: a.annual_revenue_micros.map(money),
        }),
        owner: facts.owner.as_ref().map_or(
            UserView {
                name: String::new(),
                email: String::new(),
                role: "rep".into(),
            },
            |u| UserView {
                name: u.display_name.clone(),
                email: u.email.clone(),
                role: u.role.as_str().to_owned(),
            },
        ),
        contact_roles: facts.roles.clone(),
        history,
        activity: ActivityView {
            count: notes.len() as i64,
            last_at: notes.last().map(|n| **n),
        },
        // Quotes arrive with CPQ; until then no deal has one.
        quote: None,
        committee: facts.committee.clone(),
    }
}

/// What a script reads of a committee: role names as the scripts spell them.
fn committee_view(c: &org_chart::Committee) -> CommitteeView {
    let name = |r: &org_chart::RoleCoverage| r.role.to_value();
    let best = c.paths.first();
    CommitteeView {
        filled: c
            .roles
            .iter()
            .filter(|r| r.coverage() != org_chart::Coverage::Missing)
            .map(name)
            .collect(),
        engaged: c
            .roles
            .iter()
            .filter(|r| r.coverage() == org_chart::Coverage::Engaged)
            .map(name)
            .collect(),
        blockers: c.blockers.len() as i64,
        path_strength: best
            .and_then(|p| Decimal::from_f64_retain(p.strength).map(|d| d.round_dp(2))),
        path_hops: best.map(|p| p.steps.len().saturating_sub(1) as i64),
    }
}

fn script_failed(stage: &str, err: SandboxError) -> AppResult<AppError> {
    Ok(AppError::ScriptFailed {
        stage: stage.to_owned(),
        message: describe(&problems(err)?),
    })
}

/// What the scripts decided for one move, before anything is written.
pub struct MoveDecision {
    pub script_id: Option<i64>,
    enter: Option<Outcome>,
    exit: Option<(i64, Outcome)>,
    /// The scripts (and publishers) of the stages left and entered that it ran on.
    ran_on: Vec<Stamp>,
}

/// Runs the leaving stage's exit actions and the target stage's guard and entry actions
/// for a deal about to move. A denial or a failing script refuses the move. Runs before
/// the write transaction: a script never holds the database's write lock.
///
/// The scripts come from the instance's cache. `None` means they had changed (on
/// another instance): the cache has forgotten them and the move must be decided again.
/// A decision to go ahead is checked by the move's update ([`MoveDecision::scripts_unchanged`]);
/// a refusal is checked here before it is answered.
pub(crate) async fn decide_move(
    svc: &Services,
    mover: Arc<Scope>,
    moving: &Parties,
    names: &Stages,
    target: &stage::Model,
    now: DateTime<Utc>,
) -> AppResult<Option<MoveDecision>> {
    let stages = [moving.deal.stage_id, target.id];
    let mut scripts = svc.scripts.of(&svc.db, &stages).await?;
    let entering = scripts
        .iter()
        .position(|s| s.script.stage_id == target.id)
        .map(|i| scripts.swap_remove(i));
    let leaving = scripts.pop();
    let ran_on = vec![
        Stamp::of(moving.deal.stage_id, leaving.as_deref()),
        Stamp::of(target.id, entering.as_deref()),
    ];
    let scripts = MoveScripts { entering, leaving };
    match run_move_scripts(svc, mover, moving, names, target, now, scripts).await {
        Ok((enter, exit)) => Ok(Some(MoveDecision {
            script_id: ran_on[1].script_id,
            enter,
            exit,
            ran_on,
        })),
        Err(refusal @ (AppError::GuardDenied { .. } | AppError::ScriptFailed { .. })) => {
            if !svc.scripts.still(&svc.db, &ran_on).await? {
                return Ok(None);
            }
            Err(refusal)
        }
        Err(other) => Err(other),
    }
}

/// The published scripts of the stage a move enters and the stage it leaves.
struct MoveScripts {
    entering: Option<Arc<Published>>,
    leaving: Option<Arc<Published>>,
}

/// Runs a move's scripts in one exchange with the sandbox: the entry outcome, and the
/// exit outcome with its script. The entering stage's failure or denial comes first.
async fn run_move_scripts(
    svc: &Services,
    mover: Arc<Scope>,
    moving: &Parties,
    names: &Stages,
    target: &stage::Model,
    now: DateTime<Utc>,
    MoveScripts { entering, leaving }: MoveScripts,
) -> AppResult<(Option<Outcome>, Option<(i64, Outcome)>)> {
    let deal = &moving.deal;
    let reads = [&entering, &leaving]
        .into_iter()
        .flatten()
        .fold(Reads::default(), |r, p| r.and(Reads::of(&p.script.source)));
    let mut views = AuthorViews::new(mover, reads);
    let mut runs = Vec::new();
    if let Some(script) = &entering {
        let from = stage_name(names, deal.stage_id);
        let event = (Event::Enter, target.name.as_str(), from);
        runs.push(
            ScriptRun::new(svc, &svc.db, &mut views, script, moving, names, event, now).await?,
        );
    }
    // The leaving script's own failure to start (its publisher is gone) comes after
    // whatever the entering one answers, as if they ran one after the other.
    let mut leaving_failed = None;
    if let Some(script) = &leaving {
        let leaving_name = stage_name(names, deal.stage_id).unwrap_or_default();
        let event = (
            Event::Exit,
            leaving_name.as_str(),
            Some(leaving_name.clone()),
        );
        match ScriptRun::new(svc, &svc.db, &mut views, script, moving, names, event, now).await {
            Ok(run) => runs.push(run),
            Err(failed @ AppError::ScriptFailed { .. }) => leaving_failed = Some(failed),
            Err(other) => return Err(other),
        }
    }
    let mut outcomes = evaluate(svc, &moving.deal, runs).await?.into_iter();
    let mut enter = None;
    if entering.is_some() {
        let outcome = outcomes.next().ok_or_else(missing_answer)??;
        if let Some(message) = outcome.denial_message() {
            return Err(AppError::GuardDenied {
                stage: target.name.clone(),
                message,
            });
        }
        enter = Some(outcome);
    }
    if let Some(failed) = leaving_failed {
        return Err(failed);
    }
    let mut exit = None;
    if let Some(script) = leaving {
        let outcome = outcomes.next().ok_or_else(missing_answer)??;
        exit = Some((script.script.id, outcome));
    }
    Ok((enter, exit))
}

/// One script about to run for a move, with its author's permissions.
struct ScriptRun {
    /// What the sandbox evaluates: the source and its context.
    run: Run,
    /// The stage the script belongs to, for errors.
    stage: String,
    author: Arc<Scope>,
}

impl ScriptRun {
    /// `script` for `event` on entering or leaving `stage` (coming from `from_stage`),
    /// with its author's view of the deal.
    #[allow(clippy::too_many_arguments)]
    async fn new<C: ConnectionTrait>(
        svc: &Services,
        db: &C,
        views: &mut AuthorViews,
        script: &Published,
        moving: &Parties,
        names: &Stages,
        (event, stage, from_stage): (Event, &str, Option<String>),
        now: DateTime<Utc>,
    ) -> AppResult<ScriptRun> {
        let (author, facts) = views.of(svc, db, script, stage, names, moving).await?;
        Ok(ScriptRun {
            run: Run {
                source: script.script.source.clone(),
                context: Box::new(context_from(&facts, names, event, stage, now, from_stage)),
            },
            stage: stage.to_owned(),
            author,
        })
    }
}

/// The sandbox answers every run it is given; this is for the impossible case.
pub(super) fn missing_answer() -> AppError {
    AppError::internal(anyhow::anyhow!(
        "the sandbox answered fewer scripts than it was given"
    ))
}

/// Evaluates a move's scripts in one exchange with the sandbox. Each answer is the
/// script's outcome, or the error that refuses the move: the script failed, or it sets
/// fields on a deal its author may not edit.
async fn evaluate(
    svc: &Services,
    deal: &opportunity::Model,
    runs: Vec<ScriptRun>,
) -> AppResult<Vec<AppResult<Outcome>>> {
    let (sandbox_runs, runs): (Vec<Run>, Vec<(String, Arc<Scope>)>) = runs
        .into_iter()
        .map(|r| (r.run, (r.stage, r.author)))
        .unzip();
    let results = svc.sandbox.evaluate_all(Lane::Moves, sandbox_runs).await;
    let mut answers = Vec::with_capacity(runs.len());
    for ((stage, author), result) in runs.iter().zip(results) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(err) => {
                answers.push(Err(script_failed(stage, err)?));
                continue;
            }
        };
        let sets_fields = outcome
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetField { .. }));
        if sets_fields && !author.allows_opportunity(deal, AccessLevel::Edit) {
            answers.push(Err(AppError::ScriptFailed {
                stage: stage.clone(),
                message: "set_field: the script's author may not edit this deal, so neither \
                          may the script"
                    .into(),
            }));
            continue;
        }
        answers.push(Ok(outcome));
    }
    Ok(answers)
}

/// Runs the entry stage's guard and entry actions for a deal being created (`deal` is
/// the row about to be inserted; `db` is the creating transaction, so that an account
/// created in it, by a lead conversion, is seen).
pub(crate) async fn decide_entry<C: ConnectionTrait>(
    svc: &Services,
    db: &C,
    mover: Arc<Scope>,
    deal: &opportunity::Model,
    target: &stage::Model,
    now: DateTime<Utc>,
) -> AppResult<MoveDecision> {
    let Some(script) = published_scripts::load(db, &[target.id]).await?.pop() else {
        return Ok(MoveDecision {
            script_id: None,
            enter: None,
            exit: None,
            ran_on: Vec::new(),
        });
    };
    let names = stages(db).await?;
    let moving = with_parties(db, vec![deal.clone()])
        .await?
        .pop()
        .ok_or(AppError::NotFound("opportunity"))?;
    let mut views = AuthorViews::new(mover, Reads::of(&script.script.source));
    let event = (Event::Enter, target.name.as_str(), None);
    let run = ScriptRun::new(svc, db, &mut views, &script, &moving, &names, event, now).await?;
    let outcome = evaluate(svc, deal, vec![run])
        .await?
        .pop()
        .ok_or_else(missing_answer)??;
    if let Some(message) = outcome.denial_message() {
        return Err(AppError::GuardDenied {
            stage: target.name.clone(),
            message,
        });
    }
    Ok(MoveDecision {
        script_id: Some(script.script.id),
        enter: Some(outcome),
        exit: None,
        ran_on: vec![Stamp::of(target.id, Some(&script))],
    })
}

/// Each publisher's view of the moving deal: accounts and contacts both the publisher
/// and the mover may read. Loaded once per move even when the leaving and the entering
/// stage's scripts share a publisher (the usual case), with what any of the move's
/// scripts reads (`reads`).
pub(crate) struct AuthorViews {
    mover: Arc<Scope>,
    reads: Reads,
    seen: Vec<(i64, Arc<Scope>, Arc<DealFacts>)>,
}

impl AuthorViews {
    pub(crate) fn new(mover: Arc<Scope>, reads: Reads) -> Self {
        AuthorViews {
            mover,
            reads,
            seen: Vec::new(),
        }
    }

    async fn of<C: ConnectionTrait>(
        &mut self,
        svc: &Services,
        db: &C,
        script: &Published,
        stage: &str,
        stages: &Stages,
        moving: &Parties,
    ) -> AppResult<(Arc<Scope>, Arc<DealFacts>)> {
        let publisher = match script.publisher {
            Some(p) if p.active => p,
            _ => {
                return Err(AppError::ScriptFailed {
                    stage: stage.to_owned(),
                    message: "the script's publisher is no longer an active user; an admin or \
                              the pipeline's manager must publish it again"
                        .into(),
                });
            }
        };
        if let Some((_, scope, facts)) = self.seen.iter().find(|(id, _, _)| *id == publisher.id) {
            return Ok((Arc::clone(scope), Arc::clone(facts)));
        }
        let scope = svc.authz.scope_of(publisher.id, publisher.role).await;
        let facts = facts(
            db,
            &[&scope, &self.mover],
            stages,
            vec![moving.clone()],
            self.reads,
        )
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("opportunity"))?;
        let facts = Arc::new(facts);
        self.seen
            .push((publisher.id, Arc::clone(&scope), Arc::clone(&facts)));
        Ok((scope, facts))
    }
}

/// Applies the scripts' `set_field` actions to the moving deal. A value the field does
/// not take fails the move, naming the stage. Returns whether the expected close date
/// changed (its reminders then move).
pub(crate) fn set_fields(
    deal: &mut opportunity::ActiveModel,
    decision: &MoveDecision,
    stage: &str,
) -> AppResult<bool> {
    let bad = |field: SettableField, value: &str| AppError::ScriptFailed {
        stage: stage.to_owned(),
        message: format!("set_field: `{value}` is not a valid {}", field.as_str()),
    };
    let mut close_date_moved = false;
    for outcome in decision.outcomes() {
        for action in &outcome.actions {
            let Action::SetField { field, value } = action else {
                continue;
            };
            match field {
                SettableField::Grade => {
                    let grade = Grade::try_from_value(&value.to_ascii_uppercase())
                        .map_err(|_| bad(*field, value))?;
                    deal.grade = Set(Some(grade));
                }
                SettableField::Source => {
                    let source = LeadSource::try_from_value(&value.to_ascii_lowercase())
                        .map_err(|_| bad(*field, value))?;
                    deal.source = Set(Some(source));
                }
                SettableField::ExpectedCloseDate => {
                    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
                        .map_err(|_| bad(*field, value))?;
                    deal.expected_close_date = Set(date);
                    close_date_moved = true;
                }
            }
        }
    }
    Ok(close_date_moved)
}

impl MoveDecision {
    /// The condition under which the move's update may write: the stage scripts (and
    /// their publishers) are still those the decision ran on.
    pub(crate) fn scripts_unchanged(&self) -> sea_orm::Condition {
        published_scripts::unchanged(&self.ran_on)
    }

    /// Whether the stage scripts (and their publishers) are still those the decision
    /// ran on; when they are not, the cache forgets the stages (the move is decided
    /// again).
    pub(crate) async fn still_current<C: ConnectionTrait>(
        &self,
        svc: &Services,
        txn: &C,
    ) -> AppResult<bool> {
        svc.scripts.still(txn, &self.ran_on).await
    }

    /// Whether applying the decision stores reminders (the schedulers are then told).
    pub(crate) fn schedules_reminders(&self) -> bool {
        self.outcomes()
            .any(|o| o.actions.iter().any(|a| matches!(a, Action::Remind { .. })))
    }

    fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.exit.iter().map(|(_, o)| o).chain(self.enter.iter())
    }
}

/// What applying a move's actions created.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub reminders: usize,
    /// When the first of those reminders falls due.
    pub earliest_reminder: Option<DateTime<Utc>>,
    pub tasks: usize,
}

/// Adds to `writes` what a move's scripts store: their reminders, tasks and approval
/// requests; entering a closed stage also cancels everything the deal's scripts left
/// pending, and leaving an open one its reminders. `txn` is the move's transaction, for
/// what the actions need to read (their recipients, the last activity). `deal` is the
/// deal as the move leaves it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_move<C: ConnectionTrait>(
    svc: &Services,
    txn: &C,
    writes: &mut WriteBatch,
    decision: &MoveDecision,
    deal: &opportunity::Model,
    left: Option<i64>,
    target: &stage::Model,
    now: DateTime<Utc>,
    owner: Option<&user::Model>,
) -> AppResult<Applied> {
    let mut applied = Applied::default();
    let mut people = Recipients::knowing(owner);
    if target.kind != StageKind::Open {
        cancel_pending(writes, deal.id);
    } else if let Some(left) = left {
        // A stage's reminders are moot once the deal leaves it (re-entering schedules
        // them afresh); tasks stay with whoever has to do them.
        writes.push(&reminders::cancel_for_deal(deal.id, Some(left)));
    }
    let hangs_on_activity = decision.outcomes().any(|o| {
        o.actions.iter().any(|a| match a {
            Action::Remind { timing, .. } | Action::Task { timing, .. } => {
                timing.anchor == Anchor::LastActivity
            }
            _ => false,
        })
    });
    let last_activity = if hangs_on_activity {
        note::Entity::find()
            .select_only()
            .column_as(note::Column::CreatedAt.max(), "last")
            .filter(note::Column::OpportunityId.eq(deal.id))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(txn)
            .await?
            .flatten()
    } else {
        None
    };
    // One insert per table, so the rows keep the order the scripts made them in: the
    // clauses of PostgreSQL's `WITH` run in no set order.
    let mut reminder_rows = Vec::new();
    let mut task_rows = Vec::new();
    let runs = decision
        .exit
        .iter()
        .map(|(id, o)| (*id, deal.stage_id, o))
        .chain(
            decision
                .enter
                .iter()
                .filter_map(|o| decision.script_id.map(|id| (id, target.id, o))),
        );
    for (script_id, stage_id, outcome) in runs {
        for (index, action) in outcome.actions.iter().enumerate() {
            // The deal's version names the move: every move bumps it, once.
            let key = |user: i64| {
                format!(
                    "script:{script_id}:deal:{}:version:{}:action:{index}:user:{user}",
                    deal.id, deal.version
                )
            };
            match action {
                Action::Remind {
                    to,
                    timing,
                    message,
                } => {
                    for user in people.of(svc, txn, to, deal).await? {
                        let Some(due) = due_at(
                            timing.anchor,
                            timing.offset_minutes,
                            deal,
                            now,
                            last_activity,
                        ) else {
                            continue;
                        };
                        let reminder = reminders::NewReminder {
                            recipient_id: user,
                            opportunity_id: Some(deal.id),
                            message: message.clone(),
                            due_at: due,
                            anchor: Some(timing.anchor),
                            offset_minutes: timing.offset_minutes,
                            idempotency_key: key(user),
                            script_id: Some(script_id),
                            stage_id: Some(stage_id),
                            channels: reminders::all_channels(),
                            follows_owner: *to == Recipient::Owner,
                        };
                        reminder_rows.push(reminder.into_active(now));
                        applied.reminders += 1;
                        applied.earliest_reminder =
                            Some(applied.earliest_reminder.map_or(due, |e| e.min(due)));
                    }
                }
                Action::Task {
                    assignee,
                    title,
                    timing,
                } => {
                    for user in people.of(svc, txn, assignee, deal).await? {
                        let due = due_at(
                            timing.anchor,
                            timing.offset_minutes,
                            deal,
                            now,
                            last_activity,
                        );
                        task_rows.push(task_row(
                            TaskKind::Task,
                            user,
                            deal,
                            title,
                            due,
                            Some(*timing),
                            script_id,
                            stage_id,
                            now,
                            *assignee == Recipient::Owner,
                        ));
                        applied.tasks += 1;
                    }
                }
                Action::RequireApproval { reason } => {
                    let mut approvers = people
                        .of(svc, txn, &Recipient::TerritoryManager, deal)
                        .await?;
                    if approvers.is_empty() {
                        approvers = people
                            .of(svc, txn, &Recipient::Role("admin".into()), deal)
                            .await?;
                    }
                    let title = format!("Approve {}: {reason}", deal.name);
                    for user in approvers {
                        task_rows.push(task_row(
                            TaskKind::Approval,
                            user,
                            deal,
                            &title,
                            None,
                            None,
                            script_id,
                            stage_id,
                            now,
                            false,
                        ));
                        applied.tasks += 1;
                    }
                }
                Action::SetField { .. } => {}
            }
        }
    }
    if !reminder_rows.is_empty() {
        writes.push(&reminder::Entity::insert_many(reminder_rows).into_query());
    }
    if !task_rows.is_empty() {
        writes.push(&task::Entity::insert_many(task_rows).into_query());
    }
    Ok(applied)
}

/// A task a script made, as stored.
#[allow(clippy::too_many_arguments)]
fn task_row(
    kind: TaskKind,
    assignee: i64,
    deal: &opportunity::Model,
    title: &str,
    due: Option<DateTime<Utc>>,
    timing: Option<accord_workflows::Timing>,
    script_id: i64,
    stage_id: i64,
    now: DateTime<Utc>,
    follows_owner: bool,
) -> task::ActiveModel {
    task::ActiveModel {
        id: NotSet,
        kind: Set(kind),
        assignee_id: Set(assignee),
        opportunity_id: Set(Some(deal.id)),
        title: Set(title.chars().take(500).collect()),
        due_at: Set(due),
        anchor: Set(timing.map(|t| t.anchor.as_str().to_owned())),
        offset_minutes: Set(timing.map_or(0, |t| t.offset_minutes)),
        status: Set(TaskStatus::Open),
        script_id: Set(Some(script_id)),
        stage_id: Set(Some(stage_id)),
        created_at: Set(now),
        account_id: Set(None),
        contact_id: Set(None),
        description: Set(None),
        version: Set(1),
        completed_at: Set(None),
        created_by: Set(None),
        follows_owner: Set(follows_owner),
        ics_uid: Set(None),
    }
}

/// The moment an anchor names for a deal. Expected close dates count from 09:00 UTC.
fn due_at(
    anchor: Anchor,
    offset_minutes: i64,
    deal: &opportunity::Model,
    entered: DateTime<Utc>,
    last_activity: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let base = match anchor {
        Anchor::Transition => entered,
        Anchor::ExpectedCloseDate => reminders::close_morning(deal.expected_close_date)?,
        Anchor::LastActivity => last_activity.map_or(entered, |a| a.max(entered)),
    };
    Duration::try_minutes(offset_minutes).and_then(|d| base.checked_add_signed(d))
}

/// The users each recipient of one move's actions stands for, looked up once however
/// many actions name them (a reminder and a task to the owner are one look-up). The
/// deal's owner, when the move already read them, needs no look-up at all: that row is
/// from just before the transaction, and an owner deactivated in between is still
/// stopped by the scheduler, which delivers nothing to a deactivated user.
struct Recipients<'a> {
    owner: Option<&'a user::Model>,
    found: Vec<(Recipient, Vec<i64>)>,
}

impl<'a> Recipients<'a> {
    fn knowing(owner: Option<&'a user::Model>) -> Self {
        Recipients {
            owner,
            found: Vec::new(),
        }
    }

    async fn of<C: ConnectionTrait>(
        &mut self,
        svc: &Services,
        db: &C,
        to: &Recipient,
        deal: &opportunity::Model,
    ) -> AppResult<Vec<i64>> {
        if let Some((_, users)) = self.found.iter().find(|(r, _)| r == to) {
            return Ok(users.clone());
        }
        let known = match (to, self.owner) {
            (Recipient::Owner, Some(owner)) if owner.id == deal.owner_id => {
                Some(vec![owner.clone()])
            }
            _ => None,
        };
        let users = match known {
            Some(users) => users,
            None => {
                let named = named_recipients(svc, db, to, deal).await?;
                user::Entity::find()
                    .filter(user::Column::Id.is_in(named))
                    .filter(user::Column::Active.eq(true))
                    .all(db)
                    .await?
            }
        };
        let readers = readers(svc, users, deal).await;
        self.found.push((to.clone(), readers.clone()));
        Ok(readers)
    }
}

/// Of `users`, the active ones who may read the deal: a script cannot send what it
/// knows to someone the deal is hidden from.
async fn readers(svc: &Services, users: Vec<user::Model>, deal: &opportunity::Model) -> Vec<i64> {
    let mut readers = Vec::with_capacity(users.len());
    for u in users.into_iter().filter(|u| u.active) {
        if svc
            .authz
            .scope_of(u.id, u.role)
            .await
            .allows_opportunity(deal, AccessLevel::Read)
        {
            readers.push(u.id);
        }
    }
    readers.sort_unstable();
    readers
}

async fn named_recipients<C: ConnectionTrait>(
    svc: &Services,
    db: &C,
    to: &Recipient,
    deal: &opportunity::Model,
) -> AppResult<Vec<i64>> {
    Ok(match to {
        Recipient::Owner => vec![deal.owner_id],
        Recipient::TerritoryManager => {
            let Some(territory) = deal.territory_id else {
                return Ok(Vec::new());
            };
            // The managers of the nearest territory on the path up that has any.
            for t in svc.authz.territory_path(territory).await {
                let managers: Vec<i64> = membership::Entity::find()
                    .select_only()
                    .column(membership::Column::UserId)
                    .filter(membership::Column::TerritoryId.eq(t))
                    .filter(membership::Column::IsManager.eq(true))
                    .into_tuple()
                    .all(db)
                    .await?;
                if !managers.is_empty() {
                    return Ok(managers);
                }
            }
            Vec::new()
        }
        Recipient::Role(name) => {
            let role = match name.as_str() {
                "admin" => Role::Admin,
                "sales_manager" => Role::SalesManager,
                "rep" => Role::Rep,
                _ => return Ok(Vec::new()),
            };
            user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::Role.eq(role))
                .filter(user::Column::Active.eq(true))
                .order_by_asc(user::Column::Id)
                .limit(50)
                .into_tuple()
                .all(db)
                .await?
        }
    })
}

/// Adds to `writes` the cancelling of a deal's pending reminders and the open tasks its
/// scripts made (it closed).
fn cancel_pending(writes: &mut WriteBatch, deal_id: i64) {
    writes.push(&reminders::cancel_for_deal(deal_id, None));
    writes.push(
        &task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(TaskStatus::Cancelled))
            .filter(task::Column::OpportunityId.eq(deal_id))
            .filter(task::Column::Status.eq(TaskStatus::Open))
            .filter(task::Column::ScriptId.is_not_null())
            .into_query(),
    );
}

/// A deal changed hands: the pending reminders and open tasks its scripts addressed to
/// the owner go to `new_owner`, in the caller's transaction. Ones addressed to anybody
/// else, or made by a person, stay where they are. Returns how many moved.
pub(crate) async fn hand_over<C: ConnectionTrait>(
    txn: &C,
    deal_id: i64,
    new_owner: i64,
) -> AppResult<u64> {
    use accord_entities::reminder::{self, ReminderStatus};
    use sea_orm::sea_query::ExprTrait;
    let reminders = reminder::Entity::update_many()
        .col_expr(reminder::Column::RecipientId, Expr::value(new_owner))
        .filter(reminder::Column::OpportunityId.eq(deal_id))
        .filter(reminder::Column::FollowsOwner.eq(true))
        .filter(reminder::Column::Status.eq(ReminderStatus::Pending))
        .exec(txn)
        .await?
        .rows_affected;
    let tasks = task::Entity::update_many()
        .col_expr(task::Column::AssigneeId, Expr::value(new_owner))
        // Someone editing the task meanwhile gets a CONFLICT instead of undoing this.
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .filter(task::Column::OpportunityId.eq(deal_id))
        .filter(task::Column::FollowsOwner.eq(true))
        .filter(task::Column::Status.eq(TaskStatus::Open))
        .exec(txn)
        .await?
        .rows_affected;
    Ok(reminders + tasks)
}

/// Moves the pending reminders and open tasks of a deal that hang on `anchor` to follow
/// its new value: a new expected close date, or a new activity.
pub(crate) async fn reschedule<C: ConnectionTrait>(
    txn: &C,
    deal: &opportunity::Model,
    anchor: Anchor,
    moment: DateTime<Utc>,
) -> AppResult<usize> {
    let base = match anchor {
        Anchor::ExpectedCloseDate => reminders::close_morning(deal.expected_close_date),
        _ => Some(moment),
    };
    let Some(base) = base else {
        return Ok(0);
    };
    let moved = reminders::reschedule(txn, deal.id, anchor, base).await?;
    let open = task::Entity::find()
        .filter(task::Column::OpportunityId.eq(deal.id))
        .filter(task::Column::Status.eq(TaskStatus::Open))
        .filter(task::Column::Anchor.eq(anchor.as_str()))
        .all(txn)
        .await?;
    for t in open {
        let due = Duration::try_minutes(t.offset_minutes).and_then(|d| base.checked_add_signed(d));
        let mut active: task::ActiveModel = t.into();
        active.due_at = Set(due);
        active.update(txn).await?;
    }
    Ok(moved)
}

/// A script's answer for one deal, without side effects.
pub async fn dry_run(
    svc: &Services,
    actor: &Actor,
    script_id: i64,
    opportunity_id: i64,
    event: Event,
) -> AppResult<Result<Outcome, Vec<Diagnostic>>> {
    let script = get(svc, actor, script_id).await?;
    let (_, pipeline) = stage_and_pipeline(&svc.db, script.stage_id).await?;
    require_editor(svc, actor, &pipeline).await?;
    let deal = crate::services::opportunities::get(svc, actor, opportunity_id).await?;
    let stage = stage::Entity::find_by_id(script.stage_id)
        .one(&svc.db)
        .await?
        .ok_or(AppError::NotFound("stage"))?;
    let scope = svc.authz.scope(actor).await;
    let names = stages(&svc.db).await?;
    let deals = with_parties(&svc.db, vec![deal]).await?;
    let facts = facts(&svc.db, &[&scope], &names, deals, Reads::of(&script.source)).await?;
    let Some(facts) = facts.first() else {
        return Err(AppError::NotFound("opportunity"));
    };
    let ctx = context(facts, &names, event, &stage.name, Utc::now());
    match svc
        .sandbox
        .evaluate(Lane::Authoring, &script.source, ctx)
        .await
    {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(err) => Ok(Err(problems(err)?)),
    }
}

/// The published script's guidance for a deal in its current stage.
pub async fn guidance(
    svc: &Services,
    actor: &Actor,
    deal: &opportunity::Model,
) -> AppResult<Option<Result<Outcome, Vec<Diagnostic>>>> {
    let Some(script) = svc.scripts.of(&svc.db, &[deal.stage_id]).await?.pop() else {
        return Ok(None);
    };
    let scope = svc.authz.scope(actor).await;
    let names = stages(&svc.db).await?;
    let stage = stage_name(&names, deal.stage_id).unwrap_or_default();
    let moving = with_parties(&svc.db, vec![deal.clone()])
        .await?
        .pop()
        .ok_or(AppError::NotFound("opportunity"))?;
    // The same view a move would give the script, so that a ticked requirement here is
    // one the guard will accept.
    let facts = match AuthorViews::new(scope, Reads::of(&script.script.source))
        .of(svc, &svc.db, &script, &stage, &names, &moving)
        .await
    {
        Ok((_, facts)) => facts,
        Err(AppError::ScriptFailed { message, .. }) => {
            return Ok(Some(Err(vec![Diagnostic {
                message,
                line: 0,
                column: 0,
            }])));
        }
        Err(other) => return Err(other),
    };
    let ctx = context(&facts, &names, Event::Guidance, &stage, Utc::now());
    match svc
        .sandbox
        .evaluate(Lane::Moves, &script.script.source, ctx)
        .await
    {
        Ok(outcome) => Ok(Some(Ok(outcome))),
        Err(err) => Ok(Some(Err(problems(err)?))),
    }
}

/// Tasks (and approval requests) on a deal.
pub async fn tasks_of<C: ConnectionTrait>(db: &C, deal_id: i64) -> AppResult<Vec<task::Model>> {
    Ok(task::Entity::find()
        .filter(task::Column::OpportunityId.eq(deal_id))
        .order_by_asc(task::Column::Id)
        .all(db)
        .await?)
}
