"""Annotations: labels a person (or an independent annotator) decided after reading a real appeal.

The texts stay in the shared data directory; an annotation holds the source file, the row id and the
labels (category path, urgency, appeal type, department, company, handling unit), plus how it was made
(annotator, blind or with a suggestion). ``records`` defines the row and checks it against a profile,
``tasks`` writes reading batches for annotators, ``load`` joins annotations to their texts, and
``agreement`` measures how often two independent annotators agree.
"""
