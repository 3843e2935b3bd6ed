//! The Evaluator's LLM review: when an engine is configured, a model reads the finding, the
//! issue text, the patch and the deterministic checks, and says whether the change covers the
//! requirement. It can only make the verdict stricter: a "not covered" fails the evaluation; a
//! missing or malformed verdict is recorded as not applicable, never as a pass.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::evaluate::{CheckOutcome, Evaluation};
use crate::llm::client::Engine;
use crate::llm::model::{Message, Part, Role};
use crate::llm::tools::tool;
use crate::plan::Plan;

#[derive(Deserialize, JsonSchema)]
struct SubmitReview {
    /// Whether the change addresses the finding (and the issue, when there is one) without
    /// dropping behaviour.
    covered: bool,
    /// Why, in a few sentences.
    notes: String,
}

/// Asks the model for a review and adds it to `evaluation`; returns the turn's tokens.
pub async fn review(
    engine: &Engine,
    plan: &Plan,
    diff: &str,
    evaluation: &mut Evaluation,
) -> crate::llm::model::Usage {
    let mut usage = crate::llm::model::Usage::default();
    let specs = vec![tool::<SubmitReview>("submit_review", "Your verdict on the change.")];
    let mut text = String::new();
    if let Some(i) = &plan.issue {
        text.push_str(&format!("Issue:\n{i}\n\n"));
    }
    if let Some(f) = &plan.finding {
        text.push_str(&format!("Finding: {}\n", f.summary));
    }
    text.push_str(&format!(
        "Metric the fix must meet: {}\n\nChecks:\n",
        plan.metric.as_deref().unwrap_or("")
    ));
    for c in &evaluation.checks {
        text.push_str(&format!("- {}: {:?} — {}\n", c.name, c.passed, c.detail));
    }
    text.push_str(&format!("\nPatch:\n{diff}\n\nDoes the change address the requirement without dropping behaviour? Call submit_review."));
    let messages = vec![
        Message::text(
            Role::System,
            "You review a code change for Agent Factory. The numbers were measured by the tool; judge whether the change covers the requirement.",
        ),
        Message::text(Role::User, text),
    ];
    let check = match engine.turn(&messages, &specs).await {
        Ok(r) => match {
            usage = r.usage;
            r.message
        }
        .parts
        .iter()
        .find_map(|p| match p {
            Part::ToolCall { name, args, .. } if name == "submit_review" => {
                serde_json::from_value::<SubmitReview>(args.clone()).ok()
            }
            _ => None,
        }) {
            Some(v) => CheckOutcome {
                name: "LLM review (requirement coverage)".into(),
                passed: Some(v.covered),
                detail: format!("{}: {}", engine.model, v.notes),
            },
            None => CheckOutcome {
                name: "LLM review (requirement coverage)".into(),
                passed: None,
                detail: format!("{} gave no verdict", engine.model),
            },
        },
        Err(e) => CheckOutcome {
            name: "LLM review (requirement coverage)".into(),
            passed: None,
            detail: format!("not reviewed: {e}"),
        },
    };
    if check.passed == Some(false) {
        evaluation.passed = false;
    }
    evaluation.checks.push(check);
    usage
}
