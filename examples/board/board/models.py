"""The board's tables (migrations/versions creates them)."""

from datetime import datetime

from sqlalchemy import Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "post"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    shout: Mapped[str | None] = mapped_column(Text)  # written by the worker's job
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "shout": self.shout}
