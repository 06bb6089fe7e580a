"""The service's request and response schemas (pydantic), and the fast encoder of a
``/recommend`` answer."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from recloop.serve.policy import Recommendation, ServingPolicy

__all__ = ["FeedbackIn", "FeedbackOut", "RecommendIn", "RecommendOut", "ReloadIn", "answer"]


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("ids may not contain the NUL character (\\u0000)")
    return text


Text = Annotated[str, AfterValidator(_no_nul)]  # an id: any text but NUL (PostgreSQL refuses it)


class RecommendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Text | None = Field(None, min_length=1, max_length=256)
    history: list[Text] | None = Field(None, max_length=2000)
    k: int = Field(10, ge=1)
    exploration: Literal["none", "epsilon", "softmax", "thompson"] | None = None
    exclude: list[Text] = Field(default_factory=list, max_length=100_000)
    request_id: Text | None = Field(None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _who(self) -> RecommendIn:
        if self.user_id is None and self.history is None:
            raise ValueError("send a user_id, a history (a list of item ids), or both")
        return self


class Explanation(BaseModel):
    item_id: str
    title: str
    similarity: float


class ItemOut(BaseModel):
    item_id: str
    title: str
    score: float
    propensity: float
    explanation: list[Explanation]


class RecommendOut(BaseModel):
    request_id: str
    user_id: str
    model_version: str
    exploration: str
    items: list[ItemOut]
    slate_propensity: float
    propensity_exact: bool
    cold_start: str | None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    event_id: Text = Field(min_length=1, max_length=128)
    request_id: Text = Field(min_length=1, max_length=128)
    user_id: Text = Field(min_length=1, max_length=256)
    item_id: Text = Field(min_length=1, max_length=256)
    type: Literal["click", "rating", "skip", "view"]
    value: float = 1.0


class FeedbackOut(BaseModel):
    event_id: str
    stored: bool
    duplicate: bool
    seq: int


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: str = Field(min_length=1, max_length=4096)


def answer(policy: ServingPolicy, rec: Recommendation, request_id: str, user_id: str,
            version: str, exploration: str) -> bytes:  # fmt: skip
    """A :class:`RecommendOut` as JSON bytes, built directly with orjson (the schema documents
    it; a pydantic round trip per request cost more than the rest of the answer)."""
    ids, titles = policy.item_ids, policy.titles
    items = [
        {"item_id": ids[i], "title": titles[i], "score": sc, "propensity": p,
         "explanation": [{"item_id": ids[j], "title": titles[j], "similarity": sim}
                         for j, sim in expl]}
        for i, sc, p, expl in zip(rec.items.tolist(), rec.scores.tolist(),
                                  rec.slot_prob.tolist(), rec.explanations, strict=True)
    ]  # fmt: skip
    return orjson.dumps({
        "request_id": request_id, "user_id": user_id, "model_version": version,
        "exploration": exploration, "items": items, "slate_propensity": rec.slate_prob,
        "propensity_exact": rec.exact, "cold_start": rec.cold_start,
    })  # fmt: skip
