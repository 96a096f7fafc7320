//! Replaying a stage-script version against recorded history: which past transitions
//! into its stage it would have blocked, and what it would have scheduled, side by side
//! with the published version.

use std::collections::HashMap;

use accord_entities::territory_membership::AccessLevel;
use accord_entities::{opportunity, stage_transition};
use accord_workflows::engine::Reads;
use accord_workflows::{Action, Event, Outcome};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};

use crate::auth::Actor;
use crate::error::AppError;
use crate::error::AppResult;
use crate::sandbox::{Lane, Run, SandboxError};
use crate::services::Services;
use crate::services::stage_scripts::{
    DealFacts, context, describe, facts, get, missing_answer, problems, published, require_editor,
    stage_and_pipeline, stage_name, stages, with_parties,
};

/// Most transitions one replay reads.
pub const REPLAY_MAX: u64 = 100_000;
/// Transitions whose outcome differs that a replay report lists one by one.
pub const REPLAY_SAMPLES: usize = 50;
/// Transitions replayed per exchange with the sandbox. The exchange has one script's
/// time limit; typical scripts take microseconds, so 16 transitions (32 evaluations with
/// the published version) fit many times over. Scripts slow enough to break it are
/// replayed again one evaluation at a time (see `Sandbox::evaluate_all`): slower, but
/// every answer still comes back, each under its own limit.
const REPLAY_BATCH: usize = 16;

/// How a script version fares over recorded history.
#[derive(Debug, Default, Clone)]
pub struct ReplayTally {
    pub blocked: u64,
    pub reminders: u64,
    pub tasks: u64,
    pub approvals: u64,
    pub failures: u64,
}

#[derive(Debug, Clone)]
pub struct ReplayDifference {
    pub transition_id: i64,
    pub opportunity_id: i64,
    pub at: DateTime<Utc>,
    /// The draft's denial (or failure), if it would have blocked the transition.
    pub draft: Option<String>,
    /// The active version's, likewise.
    pub active: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub transitions: u64,
    pub draft: ReplayTally,
    pub active: Option<ReplayTally>,
    pub active_version: Option<i32>,
    /// Transitions the two versions decide differently (first few).
    pub differences: Vec<ReplayDifference>,
    pub differing: u64,
    /// The period held more transitions than a replay reads.
    pub truncated: bool,
}

fn tally(t: &mut ReplayTally, result: &Result<Outcome, SandboxError>) -> Option<String> {
    match result {
        Ok(outcome) => {
            for action in &outcome.actions {
                match action {
                    Action::Remind { .. } => t.reminders += 1,
                    Action::Task { .. } => t.tasks += 1,
                    Action::RequireApproval { .. } => t.approvals += 1,
                    Action::SetField { .. } => {}
                }
            }
            let denial = outcome.denial_message();
            if denial.is_some() {
                t.blocked += 1;
            }
            denial
        }
        Err(err) => {
            t.failures += 1;
            Some(match err {
                SandboxError::Script(p) | SandboxError::Busy(p) => {
                    format!("script failed: {}", describe(p))
                }
                SandboxError::Unavailable(_) => "script sandbox unavailable".into(),
            })
        }
    }
}

/// Replays a version against the recorded transitions into its stage in `[from, to)`,
/// side by side with the published version. Only deals the caller may read are
/// replayed, each with what the caller may see.
pub async fn replay(
    svc: &Services,
    actor: &Actor,
    script_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<ReplayReport> {
    let script = get(svc, actor, script_id).await?;
    let (stage, pipeline) = stage_and_pipeline(&svc.db, script.stage_id).await?;
    require_editor(svc, actor, &pipeline).await?;
    if to <= from {
        return Err(AppError::validation(
            "to",
            "the period must end after it starts",
        ));
    }
    let active = published(&svc.db, stage.id)
        .await?
        .filter(|a| a.id != script.id);
    let scope = svc.authz.scope(actor).await;
    let names = stages(&svc.db).await?;
    let visible_deals = opportunity::Entity::find()
        .select_only()
        .column(opportunity::Column::Id)
        .apply_if(scope.opportunities(AccessLevel::Read), QueryFilter::filter);
    let transitions = stage_transition::Entity::find()
        .filter(stage_transition::Column::ToStageId.eq(stage.id))
        .filter(stage_transition::Column::FromStageId.is_not_null())
        .filter(stage_transition::Column::TransitionedAt.gte(from))
        .filter(stage_transition::Column::TransitionedAt.lt(to))
        .filter(stage_transition::Column::OpportunityId.in_subquery(visible_deals.into_query()))
        .order_by_asc(stage_transition::Column::TransitionedAt)
        .order_by_asc(stage_transition::Column::Id)
        .limit(REPLAY_MAX + 1)
        .all(&svc.db)
        .await?;
    let truncated = transitions.len() as u64 > REPLAY_MAX;
    let transitions = &transitions[..transitions.len().min(REPLAY_MAX as usize)];
    let mut report = ReplayReport {
        transitions: transitions.len() as u64,
        draft: ReplayTally::default(),
        active: active.as_ref().map(|_| ReplayTally::default()),
        active_version: active.as_ref().map(|a| a.version),
        differences: Vec::new(),
        differing: 0,
        truncated,
    };
    // The history is always read: a replay sets each deal back to where it stood
    // before the replayed transition from it.
    let reads = active
        .as_ref()
        .map_or(Reads::of(&script.source), |a| {
            Reads::of(&script.source).and(Reads::of(&a.source))
        })
        .and(Reads {
            history: true,
            ..Reads::default()
        });
    for chunk in transitions.chunks(500) {
        let mut ids: Vec<i64> = chunk.iter().map(|t| t.opportunity_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let deals = opportunity::Entity::find()
            .filter(opportunity::Column::Id.is_in(ids))
            .all(&svc.db)
            .await?;
        let facts: HashMap<i64, DealFacts> = facts(
            &svc.db,
            &[&scope],
            &names,
            with_parties(&svc.db, deals).await?,
            reads,
        )
        .await?
        .into_iter()
        .map(|f| (f.deal.id, f))
        .collect();
        let mut contexts = Vec::with_capacity(chunk.len());
        for t in chunk {
            let Some(f) = facts.get(&t.opportunity_id) else {
                continue;
            };
            // The deal as it stood just before this transition.
            let before = t.transitioned_at - Duration::seconds(1);
            let mut ctx = context(f, &names, Event::Enter, &stage.name, t.transitioned_at);
            ctx.history.retain(|h| h.at <= before);
            ctx.from_stage = t.from_stage_id.and_then(|s| stage_name(&names, s));
            if let Some(from) = &ctx.from_stage {
                ctx.deal.stage = from.clone();
            }
            if let Some(last) = ctx.history.last() {
                ctx.deal.stage_entered_at = last.at;
            }
            contexts.push((t, ctx));
        }
        // Several transitions (the draft and the published version for each) per
        // exchange with the sandbox.
        for group in contexts.chunks(REPLAY_BATCH) {
            let mut runs = Vec::with_capacity(group.len() * 2);
            for (_, ctx) in group {
                for source in
                    std::iter::once(&script.source).chain(active.as_ref().map(|a| &a.source))
                {
                    runs.push(Run {
                        source: source.clone(),
                        context: Box::new(ctx.clone()),
                    });
                }
            }
            let mut results = svc
                .sandbox
                .evaluate_all(Lane::Authoring, runs)
                .await
                .into_iter();
            for (t, _) in group {
                let draft = results.next().ok_or_else(missing_answer)?;
                if let Err(err @ SandboxError::Unavailable(_)) = draft {
                    return Err(problems(err).err().unwrap_or_else(missing_answer));
                }
                let draft_says = tally(&mut report.draft, &draft);
                let active_says = match report.active.as_mut() {
                    Some(tally_of_active) => {
                        let result = results.next().ok_or_else(missing_answer)?;
                        tally(tally_of_active, &result)
                    }
                    None => None,
                };
                if draft_says != active_says {
                    report.differing += 1;
                    if report.differences.len() < REPLAY_SAMPLES {
                        report.differences.push(ReplayDifference {
                            transition_id: t.id,
                            opportunity_id: t.opportunity_id,
                            at: t.transitioned_at,
                            draft: draft_says,
                            active: active_says,
                        });
                    }
                }
            }
        }
    }
    Ok(report)
}
