"""The ``rl-policy`` execution plugin: the trained policy quotes at each decision step of a backtest.

``fit`` takes the :class:`~cmm_bt_plugins.rl.products.TrainedPolicy` and the replay's feature windows
(the ``Signals`` rows of ``rl-signals``) from the pipeline's products.  ``quote`` (the Python path,
used when per-quote hooks are active or ``compiled: false``) asks SB3's torch policy for the action at
batch 1 (the engine times every call: ``steps.decision_latency_ns``); ``compiled()`` hands the engine
the numba form of the same network (:func:`cmm_bt_plugins.rl.forward.rl_policy_quote`), which acts
identically, so backtests run whole episodes inside numba.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from cmm_bt.components import NO_PRICE, DecisionState, ExecutionPolicy, Params, Quotes, RunContext
from cmm_bt.errors import ConfigError


class RLPolicy(ExecutionPolicy):
    """Quotes with the policy trained by the strategy's ``rl:`` section."""

    name: ClassVar[str] = "rl-policy"

    class Config(Params):
        compiled: bool = Field(True, description="Offer the engine the compiled (numba) form of the network, so a backtest "
                               "without per-quote hooks runs inside numba; false: the torch policy from Python at every step.")

    def fit(self, context: RunContext) -> None:
        from cmm_bt.pipeline import Signals

        from cmm_bt_plugins.rl.products import TrainedPolicy

        products = context.products
        policy = products.get(TrainedPolicy) if products is not None else None
        signals = products.get(Signals) if products is not None else None
        if policy is None or signals is None:
            raise ConfigError("rl-policy needs a trained policy: add an rl: section (e.g. rl: {name: ppo}) to the strategy",
                              key="execution")
        if list(signals.frame.columns) != policy.feature_columns:
            raise ConfigError("rl-policy: the strategy's signals are not the rl section's feature windows (another section "
                              "provides the signals)", key="execution")
        self.policy = policy
        self.rows = np.ascontiguousarray(signals.frame.to_numpy(np.float32))
        self.params = policy.params()
        self._quoter = policy.actions.python_quoter()
        self._d = policy.n_features
        self._limit = policy.actions.limit

    def observation(self, state: DecisionState) -> np.ndarray:
        """The observation of a decision step (as the environment builds it)."""
        d = self._d
        x = np.empty((1, d + 2), np.float32)
        x[0, :d] = self.rows[state.step]
        x[0, d] = min(max(state.position / self._limit, -1.0), 1.0)
        x[0, d + 1] = 1.0 - min(max(state.episode_progress, 0.0), 1.0)
        return x

    def quote(self, state: DecisionState) -> Quotes:
        action, _ = self.policy.sb3_model().predict(self.observation(state), deterministic=True)
        bp, bq, ap, aq = self._quoter(action[0], state.best_bid, state.best_ask, state.position)
        return Quotes(None if bp == NO_PRICE else int(bp), float(bq), None if ap == NO_PRICE else int(ap), float(aq))

    def compiled(self):
        if not self.config.compiled:
            return None
        from cmm_bt_plugins.rl.forward import rl_policy_quote

        return rl_policy_quote, self.params
