"""The meta-model: scikit-learn estimators that learn from past runs which way of fine-tuning
works for a task, what it costs and how fast it serves, and the recommendation built on them."""
