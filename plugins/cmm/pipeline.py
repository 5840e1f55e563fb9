"""Hook implementations of CMM: the ``probe``, ``student`` and ``moe`` kinds and sections, their
components, the ``cmm-bt probe`` command and the CMM report section.

The stages themselves are in :mod:`cmm_bt_plugins.cmm.stages`: a strategy with ``students:``
(and a ``teacher:``) gets distillation data → OFDD students → mixture → signals, and ``probe:``
adds the fluorescent probe whose peak bands and regimes drive the students.
"""

from __future__ import annotations

from cmm_bt import hookimpl
from cmm_bt.sections import Section

from cmm_bt_plugins.cmm.report import cmm_bt_report_sections, cmm_bt_study_notes  # noqa: F401  (hook implementations)
from cmm_bt_plugins.models.interfaces import MoE, Probe, Student


@hookimpl
def cmm_bt_register_kinds(register):
    register("probe", Probe)
    register("student", Student)
    register("moe", MoE)


@hookimpl
def cmm_bt_register_components(register):
    from cmm_bt_plugins.cmm.moe import MOE_CLASSES
    from cmm_bt_plugins.cmm.probe import FluorescentProbe
    from cmm_bt_plugins.cmm.students import STUDENT_CLASSES

    register(FluorescentProbe, aliases=("nfp",))
    for cls in (*STUDENT_CLASSES, *MOE_CLASSES):
        register(cls)


@hookimpl
def cmm_bt_register_sections(register):
    from cmm_bt_plugins.cmm.stages import probe_stages, student_stages

    register(Section("probe", kind="probe", stages=probe_stages,
                     description="Model stage: where each task's information lives in the teacher's layers (kind `probe`)."))
    register(Section("students", kind="student", stages=student_stages,
                     description="Model stage: students distilled from the teacher, mixed by the `moe` section (kind `student`)."))
    register(Section("moe", kind="moe", description="Model stage: the mixture of the students' experts (kind `moe`; default hajek)."))


@hookimpl
def cmm_bt_register_commands(app):
    from cmm_bt_plugins.cmm.probe_command import probe_command

    app.command(name="probe", help=probe_command.__doc__)(probe_command)
