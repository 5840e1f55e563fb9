"""Studies: every strategy tuned alike, run over seeds on the test split, compared with intervals."""

from cmm_bt.study.runner import StudyResult, run_study
from cmm_bt.study.spec import StudyFile, load_study

__all__ = ["StudyFile", "StudyResult", "load_study", "run_study"]
