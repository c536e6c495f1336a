//! Inline SVG bar charts for the HTML report (no scripts, no external resources).

use std::fmt::Write;

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML and SVG text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One data series (a parser): its name and fill colour.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
}

/// A labelled group of bars, one value per series: fractions in [0, 1], with optional
/// intervals drawn as whiskers.
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub values: Vec<Option<f64>>,
    pub intervals: Vec<Option<[f64; 2]>>,
}

fn legend(s: &mut String, series: &[Series<'_>], x: f64, y: f64) {
    for (i, se) in series.iter().enumerate() {
        let x = x + i as f64 * 170.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" class="lg">{}</text>"#,
            y - 10.0,
            se.color,
            x + 17.0,
            y,
            escape(se.name)
        );
    }
}

/// Vertical grouped bars on a 0–100 % axis (e.g. Typical / Attack / Over-Safe / Total).
pub fn grouped_bars(title: &str, groups: &[Group], series: &[Series<'_>]) -> String {
    let (width, height) = (680.0, 320.0);
    let (left, right, top, bottom) = (48.0, 12.0, 44.0, 36.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let y = |v: f64| top + plot_h * (1.0 - v.clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}">"#,
        escape(title)
    );
    legend(&mut s, series, left, 20.0);
    for tick in [0, 20, 40, 60, 80, 100] {
        let ty = y(tick as f64 / 100.0);
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{ty}" y2="{ty}" class="grid"/><text x="{}" y="{}" class="ax" text-anchor="end">{tick}%</text>"#,
            width - right,
            left - 6.0,
            ty + 4.0
        );
    }
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = group_w * 0.72 / series.len().max(1) as f64;
    for (g, group) in groups.iter().enumerate() {
        let gx = left + g as f64 * group_w + group_w * 0.14;
        for (i, se) in series.iter().enumerate() {
            let x = gx + i as f64 * bar_w;
            let Some(v) = group.values.get(i).copied().flatten() else {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" class="ax" text-anchor="middle">n/a</text>"#,
                    x + (bar_w - 2.0) / 2.0,
                    y(0.0) - 4.0
                );
                continue;
            };
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {:.1}%</title></rect>"#,
                y(v),
                bar_w - 2.0,
                y(0.0) - y(v),
                se.color,
                escape(&format!("{} — {}", group.label, se.name)),
                100.0 * v
            );
            let cx = x + (bar_w - 2.0) / 2.0;
            let interval = group.intervals.get(i).copied().flatten();
            if let Some([lo, hi]) = interval {
                let _ = write!(
                    s,
                    r#"<path d="M{cx:.1} {:.1}V{:.1}M{:.1} {:.1}h8M{:.1} {:.1}h8" class="ci"/>"#,
                    y(lo),
                    y(hi),
                    cx - 4.0,
                    y(lo),
                    cx - 4.0,
                    y(hi)
                );
            }
            // The value sits above the bar, or above its whisker.
            let top_of = interval.map_or(v, |[_, hi]| hi.max(v));
            let _ = write!(
                s,
                r#"<text x="{cx:.1}" y="{:.1}" class="val" text-anchor="middle">{:.1}</text>"#,
                y(top_of) - 4.0,
                100.0 * v
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="lab" text-anchor="middle">{}</text>"#,
            left + (g as f64 + 0.5) * group_w,
            height - bottom + 20.0,
            escape(&group.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one row per label, one thin bar per series, on a 0–100 % axis.
pub fn horizontal_bars(title: &str, rows: &[Group], series: &[Series<'_>]) -> String {
    let bar_h = 9.0;
    let row_h = bar_h * series.len().max(1) as f64 + 8.0;
    let (label_w, plot_w, right, top, bottom) = (300.0, 380.0, 48.0, 40.0, 24.0);
    let width = label_w + plot_w + right;
    let height = top + row_h * rows.len() as f64 + bottom;
    let x = |v: f64| label_w + plot_w * v.clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}">"#,
        escape(title)
    );
    legend(&mut s, series, label_w, 18.0);
    let axis_y = height - bottom;
    for tick in [0, 25, 50, 75, 100] {
        let tx = x(tick as f64 / 100.0);
        let _ = write!(
            s,
            r#"<line x1="{tx}" x2="{tx}" y1="{top}" y2="{axis_y}" class="grid"/><text x="{tx}" y="{}" class="ax" text-anchor="middle">{tick}%</text>"#,
            axis_y + 16.0
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let ry = top + r as f64 * row_h + 4.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" class="lab" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            ry + row_h / 2.0,
            escape(&row.label)
        );
        for (i, se) in series.iter().enumerate() {
            let Some(v) = row.values.get(i).copied().flatten() else {
                continue;
            };
            let by = ry + i as f64 * bar_h;
            let _ = write!(
                s,
                r#"<rect x="{label_w}" y="{by:.1}" width="{:.1}" height="{}" fill="{}"><title>{}: {:.1}%</title></rect><text x="{:.1}" y="{:.1}" class="val">{:.1}</text>"#,
                x(v) - label_w,
                bar_h - 1.0,
                se.color,
                escape(&format!("{} — {}", row.label, se.name)),
                100.0 * v,
                x(v) + 3.0,
                by + bar_h - 1.5,
                100.0 * v
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_with_values_and_text_is_escaped() {
        let series = [Series {
            name: "a<b",
            color: "#123456",
        }];
        let groups = [Group {
            label: "x & y".into(),
            values: vec![Some(0.5)],
            intervals: vec![Some([0.4, 0.6])],
        }];
        let svg = grouped_bars("t", &groups, &series);
        assert!(svg.contains("a&lt;b") && svg.contains("x &amp; y") && !svg.contains("x & y"));
        // Plot height 320 − 44 − 36 = 240: a 50% bar is 120 high.
        assert!(svg.contains(r#"height="120.0""#), "{svg}");
        assert!(svg.contains(r#"class="ci""#));
        let h = horizontal_bars("t", &groups, &series);
        // Plot width 380: a 50% bar is 190 wide.
        assert!(h.contains(r#"width="190.0""#), "{h}");
    }
}
