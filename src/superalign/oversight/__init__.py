"""Human oversight: the budgeted review queue, routing, the review desk and the promotion gate
(docs/design.md §1: humans have the ultimate say).

    picked = route_to_humans(verdicts, budget=10)            # routing.py
    queue = ReviewQueue(run_dir / "run.sqlite"); queue.enqueue(items)   # queue.py
    promote_if_approved(PromotionGate(db), "round-2")        # promotion.py
"""
