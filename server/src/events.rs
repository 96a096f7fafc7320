//! Change events for subscribers. Services publish after their transaction commits;
//! each subscription decides per event, against the subscriber's territory access at
//! that moment, whether to deliver it. So a membership removed while a client is
//! subscribed takes effect on the very next event, like on the next HTTP request.
//!
//! The bus is per process: a client connected to one instance hears about changes made
//! through that instance. (Delivery across instances through PostgreSQL LISTEN/NOTIFY
//! comes with reminders.)

use accord_entities::opportunity;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind by before it misses some (it is told).
const BUFFER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Created,
    Updated,
    StageChanged,
    Deleted,
}

/// A deal as it was when the event happened.
#[derive(Debug, Clone)]
pub struct OpportunityEvent {
    pub operation: Operation,
    pub opportunity: opportunity::Model,
    pub actor_id: i64,
    pub at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct EventBus {
    opportunities: broadcast::Sender<OpportunityEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            opportunities: broadcast::channel(BUFFER).0,
        }
    }
}

impl EventBus {
    pub fn opportunity(
        &self,
        operation: Operation,
        opportunity: &opportunity::Model,
        actor_id: i64,
    ) {
        // No subscribers is not an error.
        let _ = self.opportunities.send(OpportunityEvent {
            operation,
            opportunity: opportunity.clone(),
            actor_id,
            at: Utc::now(),
        });
    }

    pub fn opportunities(&self) -> broadcast::Receiver<OpportunityEvent> {
        self.opportunities.subscribe()
    }
}
