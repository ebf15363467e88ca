"""recommender: measure, learn and recommend how to fine-tune a language model for a task.

Heavy libraries (torch, transformers, adapters) load lazily, when a function needs them.
"""

__version__ = "0.1.0"
