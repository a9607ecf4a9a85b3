//! `"model": "auto"`: a model picked by how long the prompt is, from `ROUTING_RULES`.

use crate::config::RoutingRule;

/// The model for `"model": "auto"`. Rules are checked in order; the first whose `max_words`
/// the prompt fits (or that has none) wins.
pub fn route<'r>(rules: &'r [RoutingRule], prompt: &str) -> &'r str {
    let words = prompt.split_whitespace().count();
    rules
        .iter()
        .find(|r| r.max_words.is_none_or(|max| words <= max))
        .or(rules.last())
        .map(|r| r.model.as_str())
        .unwrap_or("claude-sonnet-4-6")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_routing_rules;

    #[test]
    fn short_prompts_go_to_the_cheap_model_and_long_ones_up() {
        let rules = default_routing_rules();
        assert_eq!(route(&rules, "Write an opener for Ada"), "claude-haiku-4-5");
        assert_eq!(route(&rules, &"word ".repeat(200)), "claude-sonnet-4-6");
        assert_eq!(route(&rules, &"word ".repeat(5000)), "claude-opus-4-6");
    }
}
