//! Pictures of an org chart: SVG for a dashboard to embed, Graphviz DOT for tools.
//! Pure functions of an [`OrgChart`]; every name and title is escaped for the format it
//! lands in, since contact data is whatever reps typed (or imported).

use std::fmt::Write;

use accord_entities::contact_influence::InfluenceKind;
use accord_entities::opportunity_contact_role::ContactRole;

use super::org_chart::{ChartNode, OrgChart};

const BOX_WIDTH: f64 = 200.0;
const BOX_HEIGHT: f64 = 64.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 56.0;
const MARGIN: f64 = 24.0;
const LEGEND_HEIGHT: f64 = 28.0;

fn role_label(role: ContactRole) -> &'static str {
    match role {
        ContactRole::DecisionMaker => "Decision maker",
        ContactRole::EconomicBuyer => "Economic buyer",
        ContactRole::Champion => "Champion",
        ContactRole::Influencer => "Influencer",
        ContactRole::TechnicalBuyer => "Technical buyer",
        ContactRole::User => "User",
        ContactRole::Blocker => "Blocker",
    }
}

fn kind_label(kind: InfluenceKind) -> &'static str {
    match kind {
        InfluenceKind::Influences => "influences",
        InfluenceKind::ChampionsFor => "champions for",
        InfluenceKind::Blocks => "blocks",
        InfluenceKind::Mentors => "mentors",
        InfluenceKind::FormerColleagueOf => "former colleague of",
    }
}

fn kind_colour(kind: InfluenceKind) -> &'static str {
    match kind {
        InfluenceKind::Influences => "#2563eb",
        InfluenceKind::ChampionsFor => "#16a34a",
        InfluenceKind::Blocks => "#dc2626",
        InfluenceKind::Mentors => "#9333ea",
        InfluenceKind::FormerColleagueOf => "#6b7280",
    }
}

/// Distinct roles of a node across the open deals, in a stable order.
fn roles_of(node: &ChartNode) -> Vec<ContactRole> {
    let mut roles: Vec<ContactRole> = Vec::new();
    for r in &node.deal_roles {
        if !roles.contains(&r.role) {
            roles.push(r.role);
        }
    }
    roles.sort_by_key(|r| *r as u8);
    roles
}

fn name_of(node: &ChartNode) -> String {
    format!("{} {}", node.contact.first_name, node.contact.last_name)
}

/// Text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all; validation refuses most already.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A label cut to what fits a box, by characters, not bytes.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Left edge of each node: leaves side by side in reading order, each manager centred
/// over their reports (a simple tidy tree).
fn layout(chart: &OrgChart) -> (Vec<(f64, f64)>, f64, f64) {
    let mut x = vec![0.0; chart.nodes.len()];
    let mut next_slot = 0.0_f64;
    // Post-order over the depth-first list: reports come after their manager, so walking
    // backwards places every report before its manager.
    let mut placed = vec![false; chart.nodes.len()];
    fn place(chart: &OrgChart, i: usize, x: &mut [f64], placed: &mut [bool], next_slot: &mut f64) {
        if placed[i] {
            return;
        }
        placed[i] = true;
        let reports = &chart.nodes[i].reports;
        if reports.is_empty() {
            x[i] = *next_slot;
            *next_slot += 1.0;
            return;
        }
        for r in reports {
            place(chart, *r, x, placed, next_slot);
        }
        let first = reports.first().map_or(0.0, |r| x[*r]);
        let last = reports.last().map_or(0.0, |r| x[*r]);
        x[i] = (first + last) / 2.0;
    }
    for root in &chart.roots {
        place(chart, *root, &mut x, &mut placed, &mut next_slot);
    }
    let max_depth = chart.nodes.iter().map(|n| n.depth).max().unwrap_or(0);
    let positions = chart
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                MARGIN + x[i] * (BOX_WIDTH + GAP_X),
                MARGIN + LEGEND_HEIGHT + f64::from(n.depth) * (BOX_HEIGHT + GAP_Y),
            )
        })
        .collect();
    let width = 2.0 * MARGIN + next_slot.max(1.0) * (BOX_WIDTH + GAP_X) - GAP_X;
    let height =
        2.0 * MARGIN + LEGEND_HEIGHT + f64::from(max_depth + 1) * (BOX_HEIGHT + GAP_Y) - GAP_Y;
    (positions, width.max(BOX_WIDTH + 2.0 * MARGIN), height)
}

/// The chart as a standalone SVG document.
pub fn svg(chart: &OrgChart, with_influence: bool) -> String {
    let (at, width, height) = layout(chart);
    let index: std::collections::HashMap<i64, usize> = chart
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.contact.id, i))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="system-ui, sans-serif" font-size="12" role="img">"#
    );
    let _ = write!(
        out,
        "<title>Org chart of {}</title>",
        xml_escape(&chart.account.name)
    );
    out.push_str("<defs>");
    for kind in [
        InfluenceKind::Influences,
        InfluenceKind::ChampionsFor,
        InfluenceKind::Blocks,
        InfluenceKind::Mentors,
        InfluenceKind::FormerColleagueOf,
    ] {
        let _ = write!(
            out,
            r#"<marker id="arrow-{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>"#,
            id = kind as u8,
            colour = kind_colour(kind)
        );
    }
    out.push_str("</defs>");
    let _ = write!(
        out,
        r##"<text x="{MARGIN}" y="{y}" font-size="14" font-weight="600" fill="#111827">{name} — {count} people</text>"##,
        y = MARGIN + 4.0,
        name = xml_escape(&chart.account.name),
        count = chart.nodes.len()
    );

    // Reporting lines: an elbow from each manager's bottom to each report's top.
    out.push_str(r##"<g class="reports-to" stroke="#9ca3af" fill="none">"##);
    for (i, node) in chart.nodes.iter().enumerate() {
        let (mx, my) = at[i];
        for r in &node.reports {
            let (rx, ry) = at[*r];
            let (x1, y1) = (mx + BOX_WIDTH / 2.0, my + BOX_HEIGHT);
            let (x2, y2) = (rx + BOX_WIDTH / 2.0, ry);
            let mid = (y1 + y2) / 2.0;
            let _ = write!(
                out,
                r#"<path d="M {x1:.1} {y1:.1} V {mid:.1} H {x2:.1} V {y2:.1}"/>"#
            );
        }
    }
    out.push_str("</g>");

    for (i, node) in chart.nodes.iter().enumerate() {
        let (x, y) = at[i];
        let roles = roles_of(node);
        let fill = if roles.contains(&ContactRole::Blocker) {
            "#fef2f2"
        } else if roles.contains(&ContactRole::DecisionMaker)
            || roles.contains(&ContactRole::EconomicBuyer)
        {
            "#eff6ff"
        } else if roles.contains(&ContactRole::Champion) {
            "#f0fdf4"
        } else {
            "#ffffff"
        };
        let _ = write!(
            out,
            r##"<g class="contact" data-contact="{id}"><rect x="{x:.1}" y="{y:.1}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6" fill="{fill}" stroke="#6b7280"/>"##,
            id = node.contact.id
        );
        let _ = write!(
            out,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-weight="600" fill="#111827">{name}</text>"##,
            tx = x + 8.0,
            ty = y + 18.0,
            name = xml_escape(&clip(&name_of(node), 28))
        );
        if let Some(title) = &node.contact.title {
            let _ = write!(
                out,
                r##"<text x="{tx:.1}" y="{ty:.1}" fill="#374151">{title}</text>"##,
                tx = x + 8.0,
                ty = y + 34.0,
                title = xml_escape(&clip(title, 32))
            );
        }
        let mut footer: Vec<String> = roles.iter().map(|r| role_label(*r).to_owned()).collect();
        footer.push(match node.last_activity_at {
            Some(at) => format!("last {}", at.format("%Y-%m-%d")),
            None => "no activity".to_owned(),
        });
        let _ = write!(
            out,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-size="10" fill="#4b5563">{footer}</text></g>"##,
            tx = x + 8.0,
            ty = y + 52.0,
            footer = xml_escape(&clip(&footer.join(" · "), 40))
        );
    }

    if with_influence {
        out.push_str(r#"<g class="influence" fill="none" stroke-width="1.5">"#);
        for e in &chart.edges {
            let (Some(from), Some(to)) =
                (index.get(&e.from_contact_id), index.get(&e.to_contact_id))
            else {
                continue;
            };
            let (fx, fy) = at[*from];
            let (tx, ty) = at[*to];
            let (x1, y1) = (fx + BOX_WIDTH / 2.0, fy + BOX_HEIGHT / 2.0);
            let (x2, y2) = (tx + BOX_WIDTH / 2.0, ty + BOX_HEIGHT / 2.0);
            // Bow the curve sideways so it does not run along the reporting lines.
            let (cx, cy) = (
                (x1 + x2) / 2.0 + (y2 - y1) * 0.25,
                (y1 + y2) / 2.0 - (x2 - x1) * 0.25,
            );
            let dash = if e.kind == InfluenceKind::FormerColleagueOf {
                r#" stroke-dasharray="4 3""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<path class="edge {class}" d="M {x1:.1} {y1:.1} Q {cx:.1} {cy:.1} {x2:.1} {y2:.1}" stroke="{colour}" stroke-opacity="{opacity:.2}"{dash} marker-end="url(#arrow-{id})"><title>{label} ({strength}/5)</title></path>"#,
                class = kind_label(e.kind).replace(' ', "-"),
                colour = kind_colour(e.kind),
                opacity = 0.35 + 0.13 * f64::from(e.strength.clamp(1, 5)),
                id = e.kind as u8,
                label = xml_escape(kind_label(e.kind)),
                strength = e.strength
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// A DOT string literal.
fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The chart as a Graphviz digraph: reporting lines manager → report, influence edges
/// coloured and labelled by kind.
pub fn dot(chart: &OrgChart, with_influence: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&chart.account.name));
    out.push_str("  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\"];\n");
    for node in &chart.nodes {
        let mut label = name_of(node);
        if let Some(title) = &node.contact.title {
            label.push('\n');
            label.push_str(title);
        }
        let roles = roles_of(node);
        if !roles.is_empty() {
            label.push('\n');
            label.push_str(
                &roles
                    .iter()
                    .map(|r| role_label(*r))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        let _ = writeln!(out, "  c{} [label={}];", node.contact.id, dot_quote(&label));
    }
    for node in &chart.nodes {
        if let Some(manager) = node.manager_id {
            let _ = writeln!(out, "  c{manager} -> c{} [color=gray50];", node.contact.id);
        }
    }
    if with_influence {
        for e in &chart.edges {
            let _ = writeln!(
                out,
                "  c{} -> c{} [color={}, label={}, style={}, constraint=false];",
                e.from_contact_id,
                e.to_contact_id,
                dot_quote(kind_colour(e.kind)),
                dot_quote(&format!("{} {}/5", kind_label(e.kind), e.strength)),
                if e.kind == InfluenceKind::FormerColleagueOf {
                    "dashed"
                } else {
                    "solid"
                }
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped_for_each_format() {
        assert_eq!(
            xml_escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;y&apos;"
        );
        assert_eq!(xml_escape("a\u{1}b"), "ab");
        assert_eq!(
            dot_quote("Bob \"the\" \\ boss\nCEO"),
            r#""Bob \"the\" \\ boss\nCEO""#
        );
    }

    #[test]
    fn clipping_counts_characters() {
        assert_eq!(clip("Zoë Müller-Lüdenscheidt", 10), "Zoë Mülle…");
        assert_eq!(clip("short", 10), "short");
    }
}
