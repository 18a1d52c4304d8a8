import pytest
from pydantic import BaseModel, Field, ValidationError

from harness.core.errors import one_line


class Settings(BaseModel):
    epochs: int = Field(ge=1)
    inner: dict = {}


def first_error(**fields) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Settings(**fields)
    return caught.value


def test_one_line_names_the_key_the_message_and_the_value():
    error = one_line(first_error(epochs=0), "exp.toml: {key}: {msg}{got}")
    assert str(error) == "exp.toml: epochs: Input should be greater than or equal to 1 (got 0)"


def test_a_missing_key_shows_no_value():
    assert str(one_line(first_error(), "{key}: {msg}{got}")) == "epochs: Field required"
