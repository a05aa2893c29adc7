//! Prompts as Midjourney echoes them: the text, the `--parameters`, and the normalized form
//! that the fallback linker compares.

use std::collections::BTreeMap;

/// A prompt split into its text and its parameters (canonical names, values as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    /// The prompt exactly as echoed between the `**` markers.
    pub raw: String,
    /// The part before the first parameter, trimmed.
    pub text: String,
    /// Canonical parameter name -> value ("" for flags). A repeated parameter keeps every
    /// value, joined by a space, so nothing the user asked for is dropped.
    pub params: BTreeMap<String, String>,
}

/// Maps Midjourney's aliases to one canonical name per parameter.
pub fn canonical_param(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "aspect" | "ar" => "ar",
        "v" | "version" => "v",
        "s" | "stylize" => "stylize",
        "c" | "chaos" => "chaos",
        "q" | "quality" => "quality",
        "w" | "weird" => "weird",
        "r" | "repeat" => "repeat",
        "p" | "profile" | "personalize" => "personalize",
        "sameseed" => "sameseed",
        "relax" | "relaxed" => "relax",
        other => other,
    };
    canonical.to_string()
}

/// Splits `raw` into text and parameters. A parameter starts at `--name` (or the em dash
/// `—name` that phones substitute) after white space; its value runs to the next one.
pub fn split(raw: &str) -> Prompt {
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (start of dashes, start of name)
    let bytes = raw.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let at_boundary = index == 0 || raw[..index].ends_with(char::is_whitespace);
        if at_boundary {
            let rest = &raw[index..];
            let dash_len = if rest.starts_with("--") {
                2
            } else if rest.starts_with('—') {
                '—'.len_utf8()
            } else {
                0
            };
            if dash_len > 0
                && rest[dash_len..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
            {
                starts.push((index, index + dash_len));
            }
        }
        index += raw[index..].chars().next().map_or(1, char::len_utf8);
    }

    let text_end = starts.first().map_or(raw.len(), |&(start, _)| start);
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (position, &(_, name_start)) in starts.iter().enumerate() {
        let end = starts.get(position + 1).map_or(raw.len(), |&(next, _)| next);
        let segment = &raw[name_start..end];
        let name_end = segment
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(segment.len());
        let name = canonical_param(&segment[..name_end]);
        let value = collapse_whitespace(&segment[name_end..]);
        params
            .entry(name)
            .and_modify(|existing| {
                if !value.is_empty() {
                    if !existing.is_empty() {
                        existing.push(' ');
                    }
                    existing.push_str(&value);
                }
            })
            .or_insert(value);
    }
    Prompt {
        raw: raw.to_string(),
        text: raw[..text_end].trim().to_string(),
        params,
    }
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `<https://x>` -> `https://x` (Midjourney wraps echoed links in angle brackets).
fn unwrap_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("<http") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) if !after[..close].contains(char::is_whitespace) => {
                out.push_str(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A numeric value written as `7`, `7.0` or `07` compares equal; other values stay as they are.
fn normalize_value(name: &str, value: &str) -> String {
    let value = unwrap_links(value);
    if matches!(
        name,
        "v" | "niji" | "stylize" | "chaos" | "quality" | "iw" | "weird"
    ) {
        if let Ok(number) = value.parse::<f64>() {
            if number.is_finite() {
                return format!("{number}");
            }
        }
    }
    value
}

impl Prompt {
    /// The form the fallback linker compares for equality: white space collapsed, links
    /// unwrapped, parameters under canonical names in a fixed order with numbers normalized.
    /// Case and wording are kept: two prompts that differ in words are different prompts.
    pub fn normalized(&self) -> String {
        let mut out = collapse_whitespace(&unwrap_links(&self.text));
        for (name, value) in &self.params {
            out.push_str(" --");
            out.push_str(name);
            let value = normalize_value(name, value);
            if !value.is_empty() {
                out.push(' ');
                out.push_str(&value);
            }
        }
        out
    }

    /// The form an animation's video grid shares with the image it animates: the text alone,
    /// white space collapsed and links unwrapped. The echo rewrites the parameters (wire
    /// notes section 9: `--ar` and `--no` dropped; `--raw`, `--motion`, `--video 1` and
    /// `--aspect` added; 2023: `--motion` and `--video` added), and which others it keeps is
    /// not documented: a form that kept one the echo drops would miss the true parent and
    /// could leave another image as the only candidate. Wider than the prompt, it finds
    /// candidates; the fallback's rule of one candidate decides.
    pub fn animated_form(&self) -> String {
        collapse_whitespace(&unwrap_links(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parameters_with_aliases() {
        let prompt =
            split("a cat, by the sea --ar 16:9 --v 7.0 --s 250 --no text, watermark --style raw --tile");
        assert_eq!(prompt.text, "a cat, by the sea");
        assert_eq!(prompt.params["ar"], "16:9");
        assert_eq!(prompt.params["v"], "7.0");
        assert_eq!(prompt.params["stylize"], "250");
        assert_eq!(prompt.params["no"], "text, watermark");
        assert_eq!(prompt.params["style"], "raw");
        assert_eq!(prompt.params["tile"], "");
    }

    #[test]
    fn keeps_urls_and_em_dash_and_repeats() {
        let prompt = split("<https://s.mj.run/abc> a fox —aspect 2:3 --sref https://s.mj.run/x https://s.mj.run/y --sref 123 --c 5");
        assert_eq!(prompt.text, "<https://s.mj.run/abc> a fox");
        assert_eq!(prompt.params["ar"], "2:3");
        assert_eq!(prompt.params["sref"], "https://s.mj.run/x https://s.mj.run/y 123");
        assert_eq!(prompt.params["chaos"], "5");
    }

    #[test]
    fn double_dash_inside_words_is_text() {
        let prompt = split("rock--paper scissors");
        assert!(prompt.params.is_empty());
        assert_eq!(prompt.text, "rock--paper scissors");
    }

    #[test]
    fn normalization_equates_echo_differences_only() {
        let typed = split("a  cat --v 7 --ar 1:1").normalized();
        let echoed = split("a cat --aspect 1:1 --version 7.0").normalized();
        assert_eq!(typed, echoed);
        assert_ne!(
            split("a cat --v 7").normalized(),
            split("a dog --v 7").normalized()
        );
        assert_ne!(split("A cat").normalized(), split("a cat").normalized());
    }

    #[test]
    fn an_animation_shares_the_animated_form_of_the_image_it_animates() {
        // Wire notes section 9: the video grid echoes `<prompt> --raw --motion high --video 1
        // --aspect 1:1`, with the image's `--ar` and `--no` dropped; 2023: the prompt gained
        // `--motion high --video 1`; the repository's 2026 scenario (formats_2026.jsonl)
        // echoes `glass sphere on moss --v 7.0` as `glass sphere on moss --raw --motion high
        // --video 1 --aspect 1:1`.
        let image = split("a fox in the snow --ar 3:2 --no text --s 750 --v 7.0");
        let video = split("a fox in the snow --s 750 --v 7.0 --raw --motion high --video 1 --aspect 3:2");
        let legacy = split("a fox in the snow --ar 3:2 --no text --s 750 --v 7.0 --motion high --video 1");
        assert_ne!(image.normalized(), video.normalized());
        assert_eq!(image.animated_form(), video.animated_form());
        assert_eq!(image.animated_form(), legacy.animated_form());
        assert_eq!(
            split("glass sphere on moss --v 7.0").animated_form(),
            split("glass sphere on moss --raw --motion high --video 1 --aspect 1:1").animated_form()
        );
        assert_eq!(image.animated_form(), "a fox in the snow");
        // Words still count; links are compared unwrapped.
        assert_ne!(
            split("a fox in the rain --v 7").animated_form(),
            split("a fox in the snow --v 7").animated_form()
        );
        assert_eq!(
            split("<https://s.mj.run/a> x --v 7").animated_form(),
            split("https://s.mj.run/a  x --motion low --video 1").animated_form()
        );
    }
}
