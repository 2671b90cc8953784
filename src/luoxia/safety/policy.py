"""What the text pipeline does about safety, on by default: `SafetyConfig`.

- prompts: the content filter (a blocked prompt is not generated from; the result is a refusal
  with finish_reason "filtered"), and PII "warn" (count, keep) or "redact" (replace, then generate);
- outputs: the content filter (a blocked output is replaced by the refusal) and PII redaction.
Everything it did goes into `provenance.safety`; so does turning it off:

    model.safety = SafetyConfig(enabled=False)                        # Python
    luoxia generate --no-safety ...                                   # CLI
    model.safety = SafetyConfig(content_filter=ContentFilter.from_file("terms.toml"), pii_input="redact")

Streaming note: pieces are streamed as generated; the output checks apply to `result.text` (and
so to saved files and --json), not to pieces already shown.
"""

from __future__ import annotations

import dataclasses

from luoxia.core.errors import InvalidParameterError
from luoxia.safety.filter import ContentFilter, Verdict
from luoxia.safety.pii import redact


@dataclasses.dataclass
class SafetyConfig:
    enabled: bool = True
    content_filter: ContentFilter | None = dataclasses.field(default_factory=ContentFilter)
    pii_input: str = "warn"  # "warn" | "redact" | "off"
    pii_output: str = "redact"  # "redact" | "off"
    disabled_by: str = "SafetyConfig(enabled=False)"

    def __post_init__(self):
        if self.pii_input not in ("warn", "redact", "off") or self.pii_output not in ("redact", "off"):
            raise InvalidParameterError("pii_input must be warn, redact or off; pii_output redact or off")

    def screen_prompt(self, prompt: str) -> tuple[str, Verdict | None, dict]:
        """(prompt to use, the filter's verdict or None, what to record)."""
        if not self.enabled:
            return prompt, None, {"enabled": False, "disabled_by": self.disabled_by}
        record: dict = {"enabled": True, "filter": self.content_filter is not None, "pii_input": self.pii_input,
                        "pii_output": self.pii_output}
        verdict = self.content_filter.check(prompt, "prompt") if self.content_filter else None
        if verdict:
            record.update(verdict.to_dict())
        if self.pii_input != "off":
            redacted, counts = redact(prompt)
            record["pii_in_prompt"] = counts
            if self.pii_input == "redact":
                prompt = redacted
        return prompt, verdict, record

    def screen_output(self, text: str, record: dict) -> tuple[str, dict]:
        if not self.enabled or record.get("blocked"):
            return text, record
        record = dict(record)
        if self.content_filter and (verdict := self.content_filter.check(text, "output")):
            record.update(verdict.to_dict())
            return verdict.refusal, record
        if self.pii_output == "redact":
            text, counts = redact(text)
            record["pii_redacted_in_output"] = counts
        return text, record
