"""The LR range test: ``lrfused.find.range_test(model, data)`` or ``python -m lrfused.find``."""
from lrfused.find.range_test import range_test
from lrfused.find.result import RangeTestResult

__all__ = ["range_test", "RangeTestResult"]
