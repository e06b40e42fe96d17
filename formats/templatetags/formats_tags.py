from django import template

register = template.Library()


@register.inclusion_tag("formats/_mismatch.html", takes_context=True)
def schema_mismatch(context, fingerprint: str):
    """The "schema mismatch" flag of a dead-letter group: every group of the page is looked up in one query."""
    from formats.models import GroupMismatch

    found = context.render_context.get("formats_mismatches")
    if found is None:
        found = {m.fingerprint: m for m in GroupMismatch.objects.all()[:5000]}
        context.render_context["formats_mismatches"] = found
    return {"mismatch": found.get(fingerprint)}
