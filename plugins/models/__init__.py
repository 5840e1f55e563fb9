"""The model kinds' typed interfaces and the products model stages hand each other.

Nothing here is a component: :mod:`~cmm_bt_plugins.models.interfaces` holds the base classes a
teacher, probe, student set or mixture of experts implements, :mod:`~cmm_bt_plugins.models.products`
the dataclasses pipeline stages provide and require, and :mod:`~cmm_bt_plugins.models.signals` the
signal contract (task names and signal columns) that features, the LLM teacher, CMM and the
classic-price policy share.
"""
