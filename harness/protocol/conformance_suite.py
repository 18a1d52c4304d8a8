"""The conformance suite as a pytest test class: one named test per rule.

A plugin author puts two lines in a test file and runs ``pytest`` on it::

    from harness.protocol.conformance_suite import MethodConformance

    class TestMyMethod(MethodConformance):
        methods = ["my_method"]          # registered names (entry point or METHODS.register)

Each rule of :data:`harness.protocol.conformance.RULES` is a test named after it
(``test_returns_a_backbone``, ``test_deterministic``, ...), parametrised over
``methods`` x ``backbones`` x ``regimes`` (defaults: LightGCN, interaction deletion); the
trained original and the method's runs are made once per case and shared by its tests.
The rules themselves live in :mod:`harness.protocol.conformance`, beside
:func:`~harness.protocol.conformance.check_method` (their script form). pytest is a
test-time dependency, so only this module imports it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pytest

from harness.protocol.conformance import RULES, Subject, apply


class MethodConformance:
    """Subclass it as ``Test...`` and set :attr:`methods`; optionally :attr:`backbones`
    and :attr:`regimes` (every combination is one case)."""

    methods: Sequence[str | type] = ()
    backbones: Sequence[str] = ("lightgcn",)
    regimes: Sequence[str] = ("interaction",)

    def pytest_generate_tests(self, metafunc):
        """Parametrise ``conformance_subject`` over the class's cases (class scope)."""
        if "conformance_subject" not in metafunc.fixturenames:
            return
        methods = [self.methods] if isinstance(self.methods, (str, type)) else list(self.methods)
        if not methods:
            raise TypeError(f"{type(self).__name__}: set methods = [\"name\", ...] (the methods under test)")
        cases = [(m, b, r) for m in methods for b in self.backbones for r in self.regimes]
        ids = [f"{getattr(m, '__name__', m)}-{b}-{r}" for m, b, r in cases]
        metafunc.parametrize("conformance_subject", cases, ids=ids, indirect=True, scope="class")

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_subject(cls, request) -> Subject:
        return Subject(*request.param)


def _test(rule: Callable[[Subject], None]):
    def test(self, conformance_subject):
        __tracebackhide__ = True
        apply(rule, conformance_subject)

    test.__name__ = f"test_{rule.__name__}"
    test.__doc__ = rule.__doc__
    return test


for _rule in RULES:
    setattr(MethodConformance, f"test_{_rule.__name__}", _test(_rule))
