//! The gallery's pages, rendered on the server (they work without JavaScript). Every value
//! from the database reaches the page through [`esc`] (text and attribute values alike) or
//! [`query_value`] (inside a URL), never as markup: a prompt `<script>alert(1)</script>` is
//! shown as text.

use std::fmt::Write as _;

use mjlink_core::snowflake::Snowflake;

use crate::commands::answers::{node_name, Family, FamilyNode, SearchPage, Stats};
use crate::store::{GalleryItem, MessageFile};

/// Text made safe inside an element or a quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
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

/// A value percent-encoded for a URL's query (every byte but unreserved ones).
pub fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A whole page: the navigation (gallery, stats, search, look up a message) and `body`.
pub fn page(title: &str, search: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · mjlink</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header><nav><a class=\"brand\" href=\"/\">mjlink</a> <a href=\"/\">Gallery</a> \
         <a href=\"/queue\">Queue</a> <a href=\"/stats\">Stats</a>\
         <form action=\"/search\" method=\"get\" role=\"search\"><input type=\"search\" name=\"q\" \
         value=\"{search}\" placeholder=\"Search prompts\" aria-label=\"Search prompts\"><button>Search</button></form>\
         <form action=\"/family\" method=\"get\"><input name=\"m\" placeholder=\"Message id or link\" \
         aria-label=\"Message id or link\"><button>Family</button></form></nav></header>\
         <main>{body}</main></body></html>\n",
        title = esc(title),
        search = esc(search),
    )
}

/// A page saying why there is nothing to show.
pub fn notice(title: &str, reason: &str) -> String {
    page(
        title,
        "",
        &format!("<h1>{}</h1><p class=\"notice\">{}</p>", esc(title), esc(reason)),
    )
}

fn time(posted_ms: Option<i64>) -> String {
    posted_ms
        .and_then(mjlink_core::text::format_time)
        .map(|t| t[..16.min(t.len())].replace('T', " "))
        .unwrap_or_default()
}

fn cut(text: &str, max: usize) -> String {
    mjlink_core::text::cut(text, max)
}

/// An archived file shown inline by attachment id: an image as its thumbnail of `size`
/// (see [`super::thumbs`]), a video as itself (it plays; the browser draws its first frame).
fn media(attachment: Snowflake, media: Option<&str>, alt: &str, class: &str, size: u32) -> String {
    if media == Some("mp4") {
        format!(
            "<video class=\"{class}\" src=\"/api/image/{attachment}\" controls muted loop preload=\"metadata\"></video>"
        )
    } else {
        format!(
            "<img class=\"{class}\" src=\"/api/thumb/{attachment}?size={size}\" alt=\"{}\" loading=\"lazy\">",
            esc(alt)
        )
    }
}

/// The gallery's filter, as typed back into its form and into the pager's links.
#[derive(Debug, Clone, Default)]
pub struct GalleryQuery {
    pub user: String,
    pub channel: String,
    pub action: String,
    pub since: String,
    pub until: String,
    pub favourites: bool,
}

/// The gallery: newest first, a tile per family (or per result of the chosen action).
pub fn gallery(
    items: &[GalleryItem],
    query: &GalleryQuery,
    next: Option<Snowflake>,
    actions: &[&str],
) -> String {
    let mut body = String::from("<h1>Gallery</h1>");
    let _ = write!(
        body,
        "<form class=\"filters\" action=\"/\" method=\"get\">\
         <label>User <input name=\"user\" value=\"{}\" inputmode=\"numeric\"></label> \
         <label>Channel <input name=\"channel\" value=\"{}\" inputmode=\"numeric\"></label> \
         <label>Action <select name=\"action\"><option value=\"\">grids</option>",
        esc(&query.user),
        esc(&query.channel)
    );
    for action in actions {
        let selected = if *action == query.action { " selected" } else { "" };
        let _ = write!(body, "<option{selected}>{}</option>", esc(action));
    }
    let _ = write!(
        body,
        "</select></label> <label>Since <input type=\"date\" name=\"since\" value=\"{}\"></label> \
         <label>Until <input type=\"date\" name=\"until\" value=\"{}\"></label> \
         <label><input type=\"checkbox\" name=\"fav\" value=\"1\"{}> Favourites</label> <button>Filter</button></form>",
        esc(&query.since),
        esc(&query.until),
        if query.favourites { " checked" } else { "" }
    );
    if items.is_empty() {
        body.push_str("<p class=\"notice\">Nothing here yet.</p>");
    }
    body.push_str("<ul class=\"gallery\">");
    for item in items {
        let prompt = item.prompt.as_deref().unwrap_or("(no prompt)");
        let picture = match item.attachment_id {
            Some(attachment) => media(
                attachment,
                item.media.as_deref(),
                &cut(prompt, 120),
                "thumb",
                super::thumbs::GALLERY,
            ),
            None => "<div class=\"thumb missing\">not archived</div>".to_string(),
        };
        let user = item.user_id.map(|u| format!(" · user {u}")).unwrap_or_default();
        let _ = write!(
            body,
            "<li class=\"tile\"><a href=\"/family/{id}\">{picture}</a>\
             <p class=\"prompt\"><a href=\"/family/{id}\">{}</a></p><p class=\"meta\">{} · {}{}</p></li>",
            esc(&cut(prompt, 200)),
            esc(&item.kind),
            esc(&time(item.posted_ms)),
            esc(&user),
            id = item.message_id,
        );
    }
    body.push_str("</ul>");
    if let Some(next) = next {
        let _ = write!(
            body,
            "<p class=\"pager\"><a rel=\"next\" href=\"/?user={}&amp;channel={}&amp;action={}&amp;since={}&amp;until={}&amp;fav={}&amp;before={next}\">Older ▶</a></p>",
            query_value(&query.user),
            query_value(&query.channel),
            query_value(&query.action),
            query_value(&query.since),
            query_value(&query.until),
            if query.favourites { "1" } else { "" }
        );
    }
    page("Gallery", "", &body)
}

fn link_line(node: &FamilyNode) -> String {
    let Some(link) = &node.link else {
        return "<span class=\"how\">root</span>".to_string();
    };
    let signal = link.signal.as_deref().unwrap_or("");
    match link.status.as_str() {
        "linked" => {
            let kind = match signal {
                "heuristic" => "heuristic",
                "manual" => "manual",
                _ => "exact",
            };
            let parent = link
                .parent
                .map(|p| format!(" to <a href=\"/family/{p}#m{p}\">{p}</a>"))
                .unwrap_or_default();
            let who = link
                .manual
                .as_ref()
                .map(|note| {
                    format!(
                        ", set by {} {}",
                        esc(&note.set_by),
                        esc(&time(Some(note.set_at_ms)))
                    )
                })
                .unwrap_or_default();
            format!(
                "<span class=\"how {kind}\">linked {kind} (by {}{who}){parent}</span>",
                esc(signal)
            )
        }
        "ambiguous" => {
            let candidates: Vec<String> = link
                .candidates
                .iter()
                .map(|c| format!("<a href=\"/family/{c}\">{c}</a>"))
                .collect();
            format!(
                "<span class=\"how ambiguous\">ambiguous: fits {} parents equally, mjlink does not guess: {}</span>",
                link.candidates.len(),
                candidates.join(", ")
            )
        }
        status => format!(
            "<span class=\"how unresolved\">{}: no parent known</span>",
            esc(status)
        ),
    }
}

fn params_text(params: &serde_json::Value) -> String {
    match params {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(v) if v.is_empty() => format!("--{key}"),
                serde_json::Value::String(v) => format!("--{key} {v}"),
                other => format!("--{key} {other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn files_list(files: &[MessageFile]) -> String {
    let mut out = String::new();
    for file in files {
        if file.state == "archived" {
            let _ = write!(
                out,
                "<li><a href=\"/api/image/{}\">{}</a> ({})</li>",
                file.attachment_id,
                esc(&file.discord_filename),
                esc(file.media.as_deref().unwrap_or("file"))
            );
        } else {
            let _ = write!(
                out,
                "<li>{} ({})</li>",
                esc(&file.discord_filename),
                esc(&file.state)
            );
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("<ul class=\"files\">{out}</ul>")
    }
}

/// The form that settles a result's parent by hand (`mjlink link set|clear`); it needs
/// `web.token`. Roots have none.
fn link_form(node: &FamilyNode) -> String {
    let Some(link) = &node.link else {
        return String::new();
    };
    let id = node.message.message_id;
    let clear = if link.signal.as_deref() == Some("manual") {
        format!(
            "<form class=\"link\" action=\"/family/{id}/unlink\" method=\"post\">\
             <input type=\"password\" name=\"token\" placeholder=\"web.token\" aria-label=\"web.token\" autocomplete=\"off\">\
             <button>Clear the manual link</button></form>"
        )
    } else {
        String::new()
    };
    format!(
        "<details class=\"link\"><summary>Set the parent by hand</summary>\
         <form class=\"link\" action=\"/family/{id}/link\" method=\"post\">\
         <input name=\"parent\" inputmode=\"numeric\" placeholder=\"parent message id\" aria-label=\"parent message id\">\
         <input name=\"by\" placeholder=\"your name\" aria-label=\"your name\">\
         <input type=\"password\" name=\"token\" placeholder=\"web.token\" aria-label=\"web.token\" autocomplete=\"off\">\
         <button>Link</button></form>{clear}</details>"
    )
}

/// The family page: the tree of a grid, every node with its image, what it is, how it was
/// linked, its prompt and parameters, and its Discord link.
pub fn family(family: &Family) -> String {
    let root = &family.nodes[0].message;
    let title = root.prompt.as_deref().unwrap_or("(no prompt)");
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1 class=\"family-title\">{}</h1><p class=\"meta\">{} message{} in this family{}</p><ol class=\"tree\">",
        esc(&cut(title, 300)),
        family.nodes.len(),
        if family.nodes.len() == 1 { "" } else { "s" },
        if family.truncated { " (cut: too many to show)" } else { "" }
    );
    for node in &family.nodes {
        let message = &node.message;
        let id = message.message_id;
        let asked = if id == family.asked { " asked" } else { "" };
        let pictures: String = node
            .attachments
            .iter()
            .filter(|file| file.state == "archived")
            .map(|file| {
                let shown = media(
                    file.attachment_id,
                    file.media.as_deref(),
                    &node_name(message),
                    "node-image",
                    super::thumbs::FAMILY,
                );
                if file.media.as_deref() == Some("mp4") {
                    shown
                } else {
                    format!(
                        "<a class=\"original\" href=\"/api/image/{}\" title=\"the original file\">{shown}</a>",
                        file.attachment_id
                    )
                }
            })
            .collect();
        let pictures = if pictures.is_empty() {
            "<div class=\"node-image missing\">not archived</div>".to_string()
        } else {
            pictures
        };
        let action = node
            .link
            .as_ref()
            .map(|l| l.action.as_str())
            .unwrap_or(&message.kind);
        let tile = message.tile.map(|t| format!(" · tile {t}")).unwrap_or_default();
        let user = message
            .user_id
            .map(|u| format!(" · user {u}"))
            .unwrap_or_default();
        let when = message
            .posted_at
            .as_deref()
            .map(|t| format!(" · {}", t[..16.min(t.len())].replace('T', " ")))
            .unwrap_or_default();
        let params = message.params.as_ref().map(params_text).unwrap_or_default();
        let _ = write!(
            body,
            "<li class=\"node depth-{depth}{asked}\" id=\"m{id}\"><div class=\"pictures\">{pictures}</div>\
             <div class=\"facts\"><h2><a href=\"/family/{id}#m{id}\">{name}</a> <span class=\"id\">{id}</span></h2>\
             <p class=\"meta\">{action}{tile}{user}{when}</p><p>{how}</p>\
             <p class=\"prompt\">{prompt}</p><p class=\"params\"><code>{params}</code></p>\
             <p><a class=\"jump\" href=\"{jump}\">Open in Discord</a> · <a href=\"/api/message/{id}\">JSON</a> · \
             <a class=\"metadata\" href=\"/api/family/{root_id}/metadata.json\">metadata.json</a></p>{files}{form}</div></li>",
            depth = node.depth.min(8),
            name = esc(&node_name(message)),
            action = esc(action),
            tile = esc(&tile),
            user = esc(&user),
            when = esc(&when),
            how = link_line(node),
            prompt = esc(message.prompt.as_deref().unwrap_or("")),
            params = esc(&params),
            jump = esc(&node.jump_url),
            files = files_list(&node.attachments),
            form = link_form(node),
            root_id = root.message_id,
        );
    }
    body.push_str("</ol>");
    page(&cut(title, 60), "", &body)
}

/// Search results, with a pager.
pub fn search(words: &str, page_of: Option<&SearchPage>) -> String {
    let mut body = String::from("<h1>Search</h1>");
    match page_of {
        None => body.push_str("<p class=\"notice\">Give at least one word to search for.</p>"),
        Some(found) if found.total == 0 => {
            let _ = write!(
                body,
                "<p class=\"notice\">No prompt matches “{}”.</p>",
                esc(words)
            );
        }
        Some(found) => {
            let _ = write!(
                body,
                "<p class=\"meta\">{} “{}” · page {} of {}</p><ol class=\"hits\">",
                found.matches(),
                esc(words),
                found.page + 1,
                found.pages
            );
            for hit in &found.hits {
                let user = hit.user_id.map(|u| format!(" · user {u}")).unwrap_or_default();
                let _ = write!(
                    body,
                    "<li><a class=\"hit\" href=\"/family/{id}#m{id}\">{}</a> <span class=\"meta\">{} · {}{}</span></li>",
                    esc(&cut(&hit.prompt, 300)),
                    esc(&hit.kind),
                    esc(&time(hit.posted_ms)),
                    esc(&user),
                    id = hit.message_id
                );
            }
            body.push_str("</ol><p class=\"pager\">");
            if found.page > 0 {
                let _ = write!(
                    body,
                    "<a rel=\"prev\" href=\"/search?q={}&amp;page={}\">◀ Newer</a> ",
                    query_value(words),
                    found.page - 1
                );
            }
            if found.page + 1 < found.pages {
                let _ = write!(
                    body,
                    "<a rel=\"next\" href=\"/search?q={}&amp;page={}\">Older ▶</a>",
                    query_value(words),
                    found.page + 1
                );
            }
            body.push_str("</p>");
        }
    }
    page("Search", words, &body)
}

/// The figures of `/stats`.
pub fn stats(stats: &Stats) -> String {
    let rows = |items: &[(String, i64)]| -> String {
        if items.is_empty() {
            return "none".to_string();
        }
        items
            .iter()
            .map(|(name, n)| format!("{} {n}", esc(name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let archive = &stats.archive;
    let body = format!(
        "<h1>Stats</h1><table class=\"stats\">\
         <tr><th>Grids</th><td>{}</td></tr>\
         <tr><th>Results by action</th><td>{}</td></tr>\
         <tr><th>Links by signal</th><td>{}</td></tr>\
         <tr><th>Ambiguous</th><td>{}</td></tr>\
         <tr><th>Unresolved</th><td>{}</td></tr>\
         <tr><th>Archive</th><td>archived {} ({:.1} MiB), pending {}, failed {}</td></tr>\
         <tr><th>Queue{}</th><td>{}</td></tr>\
         <tr><th>Unknown formats</th><td>{}</td></tr></table>{}",
        stats.grids,
        rows(&stats.results_by_action),
        rows(&stats.links_by_signal),
        stats.ambiguous,
        stats.unresolved,
        archive.archived,
        archive.bytes as f64 / (1024.0 * 1024.0),
        archive.pending,
        archive.failed,
        if stats.queue_paused { " (paused)" } else { "" },
        rows(&stats.queue),
        esc(&stats.unknown_formats),
        jobs_chart(&stats.jobs_per_day),
    );
    page("Stats", "", &body)
}

/// Jobs per day as a bar chart: inline SVG (no script), each bar with its date and count as
/// its title, and the same figures as a list for who cannot see it.
fn jobs_chart(days: &[(String, i64)]) -> String {
    const WIDTH: i64 = 600;
    const HEIGHT: i64 = 120;
    if days.is_empty() {
        return "<h2>Jobs per day</h2><p class=\"meta\">No job yet.</p>".to_string();
    }
    let most = days.iter().map(|(_, jobs)| *jobs).max().unwrap_or(1).max(1);
    let step = WIDTH / days.len().max(1) as i64;
    let mut svg = format!(
        "<h2>Jobs per day</h2><svg class=\"chart\" role=\"img\" aria-label=\"Jobs per day\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\">"
    );
    for (n, (date, jobs)) in days.iter().enumerate() {
        let height = (jobs * (HEIGHT - 10) / most).max(1);
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{height}\" fill=\"#5b7fbf\">\
             <title>{}: {jobs}</title></rect>",
            n as i64 * step,
            HEIGHT - height,
            (step - 2).max(1),
            esc(date),
        );
    }
    svg.push_str("</svg><p class=\"meta\">");
    let list: Vec<String> = days
        .iter()
        .map(|(date, jobs)| format!("{} {jobs}", esc(date)))
        .collect();
    svg.push_str(&list.join(", "));
    svg.push_str("</p>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc("<script>alert(1)</script> & \"x\" 'y'"),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("a cat&b=<1>"), "a%20cat%26b%3D%3C1%3E");
    }
}
