"""How many rows a list's filter matches, shown above the list: exact when small, else the planner's estimate.

An estimate alone contradicts the page when the statistics are stale (a freshly started demo: "about 30" above 50 rows).
So the rows are counted up to a limit first (an index-only LIMIT scan: cheap), and only a larger total is estimated,
never below what was counted.
"""

import json

from django.db import connection
from django.db.models import QuerySet

EXACT_UP_TO = 1000


def planner_estimate(qs: QuerySet) -> int:
    """The planner's row estimate (EXPLAIN, never COUNT(*)): cheap on any table size, roughly right."""
    sql, params = qs.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def counted(qs: QuerySet, page_size: int = 0) -> tuple[int, bool]:
    """(total, exact): the exact count when it is at most EXACT_UP_TO, else the estimate but more than what was
    counted: at least EXACT_UP_TO + 1 and at least a page (`page_size`), so never below the rows a page shows."""
    limit = max(EXACT_UP_TO, page_size)
    small = qs.order_by().values("pk")[: limit + 1].count()
    if small <= limit:
        return small, True
    return max(planner_estimate(qs), small), False
