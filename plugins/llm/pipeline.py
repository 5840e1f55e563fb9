"""Hook implementations of the LLM teacher plugin: the ``teacher`` kind and section, the HF teacher.

A strategy with a ``teacher:`` section gets the teacher stages of :mod:`cmm_bt_plugins.llm.stages`;
on its own (no students) the teacher trades through its heads' predictions: the LLM market maker.
"""

from __future__ import annotations

from cmm_bt import hookimpl
from cmm_bt.sections import Section

from cmm_bt_plugins.models.interfaces import Teacher


@hookimpl
def cmm_bt_register_kinds(register):
    register("teacher", Teacher)


@hookimpl
def cmm_bt_register_components(register):
    from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

    register(HFCausalLMTeacher, aliases=("hf",))


@hookimpl
def cmm_bt_register_sections(register):
    from cmm_bt_plugins.llm.stages import teacher_stages

    register(Section("teacher", kind="teacher", stages=teacher_stages,
                     description="Model stage: a teacher whose hidden states are market features (kind `teacher`); "
                     "without students it trades itself (the LLM market maker)."))


@hookimpl
def cmm_bt_study_columns(metrics):
    """One prediction-error column per task that any run reports (``pred_mae_<task>``)."""
    from cmm_bt.formatting import MetricRow

    from cmm_bt_plugins.models.signals import PRED_ERROR_METRIC, TASKS

    return [MetricRow(PRED_ERROR_METRIC.format(task=t), f"MAE {t}", "float", "lower") for t in TASKS
            if PRED_ERROR_METRIC.format(task=t) in metrics]


@hookimpl
def cmm_bt_study_notes(result):
    """The teacher's samples per split (train and validation feed the heads, students and probe)."""
    m = result.metrics
    if "teacher_samples_train" not in m:
        return None
    return {"teacher samples (train / validation / test replay)":
            " / ".join(str(int(m.get(f"teacher_samples_{k}") or 0)) for k in ("train", "validation", "replay"))}
