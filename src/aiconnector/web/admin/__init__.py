"""The admin UI under /admin: a thin layer of views over core/ (Django admin's habit): pages
never touch tables, and every authorization decision is one core or ``access`` call."""
