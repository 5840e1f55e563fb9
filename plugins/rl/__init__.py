"""Reinforcement-learning market makers: a gymnasium environment over the engine, SB3 training as a
pipeline stage (``rl:`` section, kind ``rl-algorithm``) and the ``rl-policy`` execution plugin (docs/rl.md)."""
