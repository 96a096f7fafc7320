//! Pure reasoning over an influence map: how much sway each contact has, and the
//! strongest chain of relationships from our side to a given person. No database here;
//! `org_chart` loads the map and hands it in.
//!
//! A path's strength is the product of its ties' weights (each in (0, 1]), so a chain is
//! never stronger than its weakest link and every extra hop costs. The strongest path is
//! then a shortest path under the cost `-ln(weight)`, limited to [`MAX_HOPS`] hops.

use std::collections::HashMap;

use accord_entities::contact_influence::InfluenceKind;

/// Weight of a reports-to line as a path of introduction: people generally reach their
/// manager and their reports, though less surely than a champion reaches a friend.
pub const REPORTS_TO_WEIGHT: f64 = 0.6;
/// Longest chain worth proposing to a rep; beyond it an introduction is wishful.
pub const MAX_HOPS: usize = 6;
/// What one person in someone's reporting line (direct or indirect) adds to their
/// influence score; an outgoing edge adds its strength / 5.
pub const INFLUENCE_PER_REPORT: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    User(i64),
    Contact(i64),
}

/// What a step of a path went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// One of our users knows the contact.
    Knows,
    Influence(InfluenceKind),
    ReportsTo,
}

/// A tie usable for introductions. Users are only ever where paths start: a path does
/// not run through a colleague in the middle.
#[derive(Debug, Clone, Copy)]
pub struct Tie {
    pub a: Party,
    pub b: Party,
    pub link: Link,
    /// In (0, 1].
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub party: Party,
    /// How this step was reached from the previous one; `None` for the first.
    pub via: Option<Link>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub strength: f64,
    pub steps: Vec<Step>,
}

/// The weight of an edge of a given strength (1..=5) for paths; blocking is no way in.
pub fn edge_weight(kind: InfluenceKind, strength: i32) -> Option<f64> {
    match kind {
        InfluenceKind::Blocks => None,
        _ => Some(f64::from(strength.clamp(1, 5)) / 5.0),
    }
}

/// The cheapest way found to a party within some number of hops: its cost, and the
/// party, tie and hop layer it came from (`None` for a source).
type Reached = (f64, Option<(Party, Link, usize)>);

/// For each target reachable from any source within [`MAX_HOPS`], the strongest path to
/// it; strongest first. Contacts among the sources start paths of their own (a champion
/// reaches the decision maker without us).
///
/// Bounded-hop shortest paths, layer by layer (Bellman-Ford cut at [`MAX_HOPS`] rounds):
/// layer `h` holds the cheapest way to each party in at most `h` hops. A plain Dijkstra
/// that stops at the hop limit would lose a weaker but shorter way to a party that is
/// needed to reach someone beyond it.
pub fn strongest_paths(ties: &[Tie], sources: &[Party], targets: &[Party]) -> Vec<Path> {
    let mut adjacent: HashMap<Party, Vec<(Party, Link, f64)>> = HashMap::new();
    for t in ties {
        if !(t.weight > 0.0 && t.weight <= 1.0) || t.a == t.b {
            continue;
        }
        // Ties are walked both ways; the walk below never steps onto a user.
        adjacent
            .entry(t.a)
            .or_default()
            .push((t.b, t.link, t.weight));
        adjacent
            .entry(t.b)
            .or_default()
            .push((t.a, t.link, t.weight));
    }
    let mut layers: Vec<HashMap<Party, Reached>> = Vec::with_capacity(MAX_HOPS + 1);
    layers.push(sources.iter().map(|s| (*s, (0.0, None))).collect());
    for hop in 1..=MAX_HOPS {
        let previous = &layers[hop - 1];
        let mut layer = previous.clone();
        let mut changed = false;
        for (party, (cost, _)) in previous {
            for (next, link, weight) in adjacent.get(party).map(Vec::as_slice).unwrap_or(&[]) {
                if matches!(next, Party::User(_)) {
                    continue;
                }
                let next_cost = cost - weight.ln();
                if layer.get(next).is_none_or(|(c, _)| next_cost < *c) {
                    layer.insert(*next, (next_cost, Some((*party, *link, hop - 1))));
                    changed = true;
                }
            }
        }
        layers.push(layer);
        if !changed {
            break;
        }
    }
    let Some(last) = layers.last() else {
        return Vec::new();
    };
    let mut paths: Vec<Path> = targets
        .iter()
        .filter_map(|target| {
            let (cost, _) = last.get(target)?;
            let mut steps = Vec::new();
            let (mut cursor, mut layer) = (*target, layers.len() - 1);
            loop {
                let (_, previous) = layers.get(layer)?.get(&cursor)?;
                match previous {
                    Some((from, link, from_layer)) => {
                        steps.push(Step {
                            party: cursor,
                            via: Some(*link),
                        });
                        (cursor, layer) = (*from, *from_layer);
                    }
                    None => {
                        steps.push(Step {
                            party: cursor,
                            via: None,
                        });
                        break;
                    }
                }
                if steps.len() > MAX_HOPS + 1 {
                    return None;
                }
            }
            steps.reverse();
            Some(Path {
                strength: (-cost).exp(),
                steps,
            })
        })
        .collect();
    paths.sort_by(|a, b| {
        b.strength
            .total_cmp(&a.strength)
            .then(a.steps.len().cmp(&b.steps.len()))
    });
    paths
}

/// Each contact's influence: the strengths of their outgoing edges (/ 5) plus
/// [`INFLUENCE_PER_REPORT`] per person in their reporting line. `managers` maps each
/// contact of the chart to its manager in the chart.
pub fn influence_scores(
    edges: &[(i64, i64, InfluenceKind, i32)],
    managers: &HashMap<i64, Option<i64>>,
) -> HashMap<i64, f64> {
    let mut score: HashMap<i64, f64> = managers.keys().map(|c| (*c, 0.0)).collect();
    for (from, _, _, strength) in edges {
        *score.entry(*from).or_default() += f64::from((*strength).clamp(1, 5)) / 5.0;
    }
    for start in managers.keys() {
        // Credit every manager above `start` with one more person in their line. Charts
        // are acyclic (the service refuses cycles); the hop bound guards stray data.
        let mut cursor = managers.get(start).copied().flatten();
        let mut hops = 0;
        while let Some(manager) = cursor {
            if manager == *start || hops > managers.len() {
                break;
            }
            *score.entry(manager).or_default() += INFLUENCE_PER_REPORT;
            cursor = managers.get(&manager).copied().flatten();
            hops += 1;
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tie(a: Party, b: Party, weight: f64) -> Tie {
        Tie {
            a,
            b,
            link: Link::Influence(InfluenceKind::Influences),
            weight,
        }
    }

    #[test]
    fn the_strongest_chain_wins_over_the_shortest_weak_one() {
        use Party::*;
        let ties = [
            // Weak direct acquaintance with the decision maker.
            Tie {
                a: User(1),
                b: Contact(9),
                link: Link::Knows,
                weight: 0.2,
            },
            // Strong two-hop chain through a champion.
            Tie {
                a: User(1),
                b: Contact(2),
                link: Link::Knows,
                weight: 1.0,
            },
            tie(Contact(2), Contact(9), 0.8),
        ];
        let paths = strongest_paths(&ties, &[User(1)], &[Contact(9)]);
        assert_eq!(paths.len(), 1);
        let p = &paths[0];
        assert!((p.strength - 0.8).abs() < 1e-9, "{p:?}");
        assert_eq!(
            p.steps.iter().map(|s| s.party).collect::<Vec<_>>(),
            vec![User(1), Contact(2), Contact(9)]
        );
        assert_eq!(p.steps[1].via, Some(Link::Knows));
    }

    #[test]
    fn paths_never_step_through_a_user_and_respect_the_hop_limit() {
        use Party::*;
        let ties = [
            Tie {
                a: User(1),
                b: Contact(2),
                link: Link::Knows,
                weight: 1.0,
            },
            Tie {
                a: User(3),
                b: Contact(2),
                link: Link::Knows,
                weight: 1.0,
            },
            Tie {
                a: User(3),
                b: Contact(4),
                link: Link::Knows,
                weight: 1.0,
            },
        ];
        // Contact 4 is reachable only through user 3, who is not a source.
        assert!(strongest_paths(&ties, &[User(1)], &[Contact(4)]).is_empty());

        let chain: Vec<Tie> = (0..10)
            .map(|i| tie(Contact(i), Contact(i + 1), 1.0))
            .collect();
        assert_eq!(
            strongest_paths(&chain, &[Contact(0)], &[Contact(6)]).len(),
            1
        );
        assert!(strongest_paths(&chain, &[Contact(0)], &[Contact(7)]).is_empty());
    }

    #[test]
    fn a_weaker_short_way_in_still_reaches_beyond_the_hop_limit() {
        use Party::*;
        // A perfect six-hop chain to X, and a weaker direct tie to X; T hangs off X.
        let mut ties: Vec<Tie> = (1..6)
            .map(|i| tie(Contact(i), Contact(i + 1), 1.0))
            .collect();
        ties.push(Tie {
            a: User(1),
            b: Contact(1),
            link: Link::Knows,
            weight: 1.0,
        });
        ties.push(Tie {
            a: User(1),
            b: Contact(6),
            link: Link::Knows,
            weight: 0.5,
        });
        ties.push(tie(Contact(6), Contact(7), 1.0));
        let paths = strongest_paths(&ties, &[User(1)], &[Contact(6), Contact(7)]);
        assert_eq!(paths.len(), 2, "{paths:?}");
        let to_t = paths
            .iter()
            .find(|p| p.steps.last().map(|s| s.party) == Some(Contact(7)));
        let to_t = to_t.expect("T is reachable in two hops");
        assert_eq!(to_t.steps.len(), 3);
        assert!((to_t.strength - 0.5).abs() < 1e-9);
        // X itself is best reached along the perfect chain, within the limit.
        let to_x = &paths[0];
        assert_eq!(to_x.steps.last().map(|s| s.party), Some(Contact(6)));
        assert!((to_x.strength - 1.0).abs() < 1e-9);
    }

    #[test]
    fn influence_counts_edges_and_the_whole_reporting_line() {
        let managers: HashMap<i64, Option<i64>> =
            [(1, None), (2, Some(1)), (3, Some(2)), (4, Some(2))].into();
        let edges = [(3, 1, InfluenceKind::Influences, 5)];
        let s = influence_scores(&edges, &managers);
        assert!((s[&1] - 0.3).abs() < 1e-9); // three people below
        assert!((s[&2] - 0.2).abs() < 1e-9); // two below
        assert!((s[&3] - 1.0).abs() < 1e-9); // one decisive edge
        assert!(s[&4].abs() < 1e-9);
    }

    #[test]
    fn blocking_is_no_way_in() {
        assert_eq!(edge_weight(InfluenceKind::Blocks, 5), None);
        assert_eq!(edge_weight(InfluenceKind::Mentors, 4), Some(0.8));
    }
}
