import pytest

from harness.core.errors import UserError
from harness.core.registry import Registry


def test_summary_is_the_first_paragraph_of_the_class_docstring_on_one_line():
    registry = Registry("thing", "tru.tests.things")

    @registry.register("documented")
    class Documented:
        """First line of the summary,
        continued here.

        Details that are not the summary."""

        @classmethod
        def describe(cls):
            return {}

    @registry.register("bare")
    class Bare(Documented):
        pass

    assert registry.summary("documented") == "First line of the summary, continued here."
    assert registry.summary("bare") == ""  # a docstring is not inherited
    assert registry.describe("documented") == {"name": "documented", "summary": registry.summary("documented"),
                                                "hyperparameters": {}}
    with pytest.raises(UserError, match=r"unknown thing 'nope' \(valid: bare, documented\)"):
        registry.get("nope")


def test_builtins_are_sealed_and_a_class_finds_its_name():
    registry = Registry("thing", "tru.tests.things")

    @registry.register("own")
    class Own:
        pass

    registry.seal_builtins()

    @registry.register("later")
    class Later:
        pass

    class Stray:
        pass

    assert registry.builtin_names() == ["own"] and registry.names() == ["later", "own"]
    assert registry.name_of(Later) == "later" and registry.name_of(Stray) == ""
