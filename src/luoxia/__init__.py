"""luoxia (落霞): an offline-first toolkit for AI-generated content.

    from luoxia import load_text_model
    model = load_text_model("smollm2")
    print(model.chat("Write a haiku about autumn.").text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from luoxia.text.pipeline import TextModel


def load_text_model(name_or_path: str = "smollm2", **kwargs) -> TextModel:
    """Load a text model by registry name, GGUF file or Hugging Face directory (see `TextModel.load`)."""
    from luoxia.text.pipeline import TextModel

    return TextModel.load(name_or_path, **kwargs)


__all__ = ["__version__", "load_text_model"]
