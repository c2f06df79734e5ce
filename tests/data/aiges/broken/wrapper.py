"""A wrapper file that cannot be imported (init must answer 30001)."""

import a_module_that_does_not_exist  # noqa: F401
