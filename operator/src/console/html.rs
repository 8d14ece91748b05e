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
.acts { background: #fff; border: 1px solid #e3e6ec; padding: 4px 12px 12px; margin: 16px 0; }
.acts form { display: flex; gap: 8px; align-items: end; margin: 8px 0; flex-wrap: wrap; }
.acts form span { align-self: center; }
.read-only { color: #4a5468; font-style: italic; }
header form.sign-out { margin: 0; } header form.sign-out button { font-size: 12px; }
form.switch { margin: 0; }
#live { font-size: 12px; color: #067647; margin-left: 8px; }
.approval-Approved { color: #067647; } .approval-Awaiting { color: #b54708; font-weight: 600; }
.approval-Rejected, .approval-Expired, .approval-Withdrawn { color: #b42318; }
"#;

/// The script, bundled too: the reports list's live updates.
pub const SCRIPT: &str = include_str!("assets/console.js");

/// Who is looking, and their session's CSRF token when they signed in
/// (a bearer-token request has none, and no sign-out button).
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub who: &'a str,
    pub csrf: Option<&'a str>,
}

/// A whole page: title, the navigation, who is signed in (with a sign-out
/// button for a session), and `body`.
pub fn page(title: &str, viewer: Option<Viewer<'_>>, body: &str) -> String {
    let who = viewer.map_or(String::new(), |v| {
        let sign_out = v.csrf.map_or(String::new(), |csrf| {
            format!(
                r#"<form method="post" action="/logout" class="sign-out"><input type="hidden" name="csrf" value="{}"><button>Sign out</button></form>"#,
                escape(csrf)
            )
        });
        format!(r#"<span class="who">{}</span>{sign_out}"#, escape(v.who))
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — homeostat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/console.css"><script src="/console.js" defer></script></head>
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
        let viewer = Viewer {
            who: "<img src=x>",
            csrf: Some("\"><script>"),
        };
        let page = page("<b>", Some(viewer), "");
        assert!(
            !page.contains("<b>") && !page.contains("<img") && !page.contains("\"><script>"),
            "{page}"
        );
        assert!(page.contains(r#"class="sign-out""#));
    }
}
