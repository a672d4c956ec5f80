"""jiesu's domain vocabulary as data: categories, urgency levels, appeal types, units, scoring rules.

Imports nothing else of jiesu's; no torch, no web framework, no database.
"""

from taxonomy.appeal_types import APPEAL_TYPES, AppealTypeScheme
from taxonomy.categories import Category, CategoryTree
from taxonomy.errors import TaxonomyError
from taxonomy.profile import DEFAULT_PROFILE, Taxonomy, cached_taxonomy, default_data_dir, load_taxonomy
from taxonomy.scoring import ScoringRules
from taxonomy.units import UNIT_KINDS, Unit, UnitRegistry, import_streets
from taxonomy.urgency import UrgencyLevel, UrgencyScheme

__all__ = [
    "APPEAL_TYPES", "AppealTypeScheme", "Category", "CategoryTree", "DEFAULT_PROFILE", "ScoringRules",
    "Taxonomy", "TaxonomyError", "UNIT_KINDS", "Unit", "UnitRegistry", "UrgencyLevel", "UrgencyScheme",
    "cached_taxonomy", "default_data_dir", "import_streets", "load_taxonomy",
]
