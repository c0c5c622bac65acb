"""The schedules `lrfused.FusedSGD(params, ..., schedule=...)` runs in its kernel."""
from lrfused._schedule import Constant, Schedule
from lrfused.cyclic import Cyclic
from lrfused.one_cycle import OneCycle
from lrfused.ramp import Ramp
from lrfused.table import Table
from lrfused.warm_restarts import WarmRestarts
from lrfused.warmup_cosine import WarmupCosine

__all__ = ["Schedule", "Constant", "OneCycle", "Cyclic", "WarmRestarts", "WarmupCosine", "Ramp", "Table"]
