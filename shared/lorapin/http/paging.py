"""The query parameters of every listing route (`?limit=&cursor=`), validated by Powertools.

Apart from `lorapin.http.resolver`: Powertools' `Query` loads pydantic, which the webhook function,
the one resolver that lists nothing, does without (README, Performance).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from lorapin.domain.cursors import MAX_PAGE

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="How many items a page holds (at most 100)")]
PageCursor = Annotated[str | None, Query(max_length=2048, description="The `next_cursor` of the page before")]
