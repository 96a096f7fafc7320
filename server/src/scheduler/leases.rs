//! Leases kept alive while a delivery is in flight.
//!
//! A claim's lease is what stops another claim (on any instance, or a later claim of
//! this one) from sending the same reminder again. It has to outlast the delivery *and*
//! the write of its outcome. A webhook may take its whole timeout, email has its own,
//! and a loaded database may hold the acknowledgement back; none of that is bounded by
//! the lease. So every reminder a worker has started on is registered here until its
//! outcome is written, and the renewer extends the lease of any whose lease is half
//! spent. An instance that dies stops renewing, and its leases run out as before; so
//! does a delivery in flight for [`HUNG_AFTER_LEASES`] leases, taken as hung.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::claims;

/// Most reminders one renewal statement names.
const RENEW_BATCH: usize = 1000;
/// A delivery in flight for this many lease lengths is taken as hung (every channel
/// has a timeout far shorter): its lease is no longer renewed, so it runs out and
/// another claim delivers the reminder, as if this instance had died.
const HUNG_AFTER_LEASES: i32 = 10;

/// The reminders this instance is delivering or has delivered without yet writing the
/// outcome, with the lease each holds.
#[derive(Default)]
pub(super) struct InFlight(Mutex<HashMap<i64, Held>>);

struct Held {
    owner: Arc<str>,
    until: DateTime<Utc>,
    since: DateTime<Utc>,
}

impl InFlight {
    /// A worker starts on reminder `id`, held by claim `owner` until `until`.
    pub(super) fn enter(&self, id: i64, owner: &Arc<str>, until: DateTime<Utc>) {
        self.lock().insert(
            id,
            Held {
                owner: Arc::clone(owner),
                until,
                since: Utc::now(),
            },
        );
    }

    /// The outcomes of `ids` are written (or given up on): their leases need no keeping.
    pub(super) fn leave(&self, ids: impl IntoIterator<Item = i64>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(&id);
        }
    }

    /// The reminders whose lease ends before `by`, per claim, of those in flight since
    /// `since` or later.
    fn ending_before(
        &self,
        by: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> HashMap<Arc<str>, Vec<i64>> {
        let mut ending: HashMap<Arc<str>, Vec<i64>> = HashMap::new();
        for (id, held) in self.lock().iter() {
            if held.until < by && held.since >= since {
                ending.entry(Arc::clone(&held.owner)).or_default().push(*id);
            }
        }
        ending
    }

    /// The leases of `ids` now last until `until` (those still in flight).
    fn extended(&self, ids: &[i64], until: DateTime<Utc>) {
        let mut held = self.lock();
        for id in ids {
            if let Some(h) = held.get_mut(id) {
                h.until = until;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        // The map stays consistent whatever panicked while holding it: every change
        // is a single insert, remove or field write.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Extends the leases of reminders in flight once half of a lease is spent.
pub(super) struct Renewer {
    pub db: DatabaseConnection,
    pub in_flight: Arc<InFlight>,
    pub lease: chrono::Duration,
}

impl Renewer {
    pub(super) async fn run(self) {
        // Checked eight times per lease: a reminder picked up with half its lease left
        // (the latest a worker starts on one) is renewed with at least three eighths left.
        let every = (self.lease / 8)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.renew_ending().await;
        }
    }

    async fn renew_ending(&self) {
        let now = Utc::now();
        let ending = self
            .in_flight
            .ending_before(now + self.lease / 2, now - self.lease * HUNG_AFTER_LEASES);
        for (owner, ids) in ending {
            for chunk in ids.chunks(RENEW_BATCH) {
                let until = Utc::now() + self.lease;
                match claims::renew(&self.db, &owner, chunk, until).await {
                    Ok(kept) => {
                        tracing::debug!(asked = chunk.len(), kept, %owner, "leases renewed");
                        self.in_flight.extended(chunk, until);
                    }
                    // Tried again at the next tick, while the lease still runs.
                    Err(e) => tracing::warn!(error = %e, "renewing reminder leases failed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leases_ending_soon_are_picked_and_extension_moves_them_out() {
        let in_flight = InFlight::default();
        let now = Utc::now();
        let a: Arc<str> = "a#1".into();
        let b: Arc<str> = "b#2".into();
        in_flight.enter(1, &a, now + chrono::Duration::seconds(1));
        in_flight.enter(2, &a, now + chrono::Duration::seconds(10));
        in_flight.enter(3, &b, now + chrono::Duration::seconds(2));
        let long_ago = now - chrono::Duration::hours(1);
        let ending = in_flight.ending_before(now + chrono::Duration::seconds(5), long_ago);
        assert_eq!(ending.get(&a), Some(&vec![1]));
        assert_eq!(ending.get(&b), Some(&vec![3]));
        assert_eq!(ending.len(), 2);

        in_flight.extended(&[1, 3], now + chrono::Duration::seconds(20));
        assert!(
            in_flight
                .ending_before(now + chrono::Duration::seconds(5), long_ago)
                .is_empty()
        );
        // A delivery in flight since before the cut-off is not renewed any more.
        let cut_off = now + chrono::Duration::seconds(1);
        assert!(
            in_flight
                .ending_before(now + chrono::Duration::seconds(60), cut_off)
                .is_empty()
        );

        in_flight.leave([1, 2, 99]);
        assert_eq!(in_flight.len(), 1);
        // Extending a reminder that left does not bring it back.
        in_flight.extended(&[1], now);
        assert_eq!(in_flight.len(), 1);
    }
}
