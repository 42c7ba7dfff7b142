"""Event schemas of the two lunch-bot topics (JSON on the wire, validated by pydantic)."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DEADLINES_TOPIC = "lunch-bot.deadlines"
DAILY_TASKS_TOPIC = "lunch-bot.daily-tasks"


class DeadlinePassedEvent(BaseModel):
    """Published after a cafe's order deadline (10:00 for lunch): the notifications worker sends
    the cafe its orders for `date`."""
    type: Literal["deadline.passed"] = "deadline.passed"
    cafe_id: int
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")  # YYYY-MM-DD
    timestamp: datetime


class DailyTaskEvent(BaseModel):
    """A scheduled batch job, e.g. "generate_recommendations" at 03:00."""
    type: str
    timestamp: datetime
