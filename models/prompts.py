"""Prompts in the policy's own format: the task's plain prompt, or its chat template (instruct models)."""

from __future__ import annotations

#: the system turn instruct models and Qwen2.5-Math-PRM are prompted with
BOXED_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


class ChatTemplateError(ValueError):
    """A chat prompt asked of a tokenizer that has no chat template."""


def chat_prompt(tokenizer, question: str, system: str | None) -> str:
    """The question as the user turn after `system`, rendered by the tokenizer's chat template with the
    assistant turn opened: the text the policy continues with its steps."""
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "the policy"
        raise ChatTemplateError(f"policy.prompt_format chat: the tokenizer of {name} has no chat template "
                                "(tokenizer_config.json: chat_template); use prompt_format plain")
    messages = [{"role": "user", "content": question}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
