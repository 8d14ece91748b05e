//! Writing HTML by hand, safely: every text that comes from outside (names,
//! evidence, notes, anything a report or a person wrote) goes through
//! [`escape`]; the page frame is one function.

/// `text` with the five characters HTML gives meaning to escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet, bundled in the binary: nothing is fetched from elsewhere.
pub const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: center; }
header a { color: #cfd8ea; text-decoration: none; } header a:hover { color: #fff; }
header .who { margin-left: auto; color: #9aa6bd; }
main { padding: 16px 20px; max-width: 1200px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
.state-Open { color: #b42318; font-weight: 600; } .state-Remediating { color: #b54708; font-weight: 600; }
.state-Resolved { color: #067647; }
.sev-Critical { color: #b42318; } .sev-Warning { color: #b54708; }
form.filters { margin: 0 0 12px; display: flex; gap: 8px; align-items: end; }
label { display: flex; flex-direction: column; font-size: 12px; color: #4a5468; }
dl { display: grid; grid-template-columns: 140px 1fr; gap: 4px 12px; background: #fff; padding: 12px; }
dt { color: #4a5468; } dd { margin: 0; }
pre { background: #fff; padding: 8px; overflow-x: auto; border: 1px solid #e3e6ec; }
.chart { background: #fff; border: 1px solid #e3e6ec; }
.refused { background: #fff4f2; border: 1px solid #f4c7bf; padding: 12px; }
"#;

/// A whole page: title, the navigation, who is signed in, and `body`.
pub fn page(title: &str, who: Option<&str>, body: &str) -> String {
    let who = who.map_or(String::new(), |w| {
        format!(r#"<span class="who">{}</span>"#, escape(w))
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — homeostat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css"></head>
<body><header><strong>homeostat</strong><a href="/reports">Reports</a><a href="/policies">Policies</a>{who}</header>
<main>{body}</main></body></html>
"#,
        title = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_comes_from_outside_cannot_become_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let page = page("<b>", Some("<img src=x>"), "");
        assert!(!page.contains("<b>") && !page.contains("<img"), "{page}");
    }
}
