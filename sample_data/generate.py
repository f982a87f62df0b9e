"""Writes the sample data beside this file: `python sample_data/generate.py` (see
bulk_contacts/samples.py for what each file is)."""

from pathlib import Path

from bulk_contacts.samples import write_samples

if __name__ == "__main__":
    for path in write_samples(Path(__file__).parent).values():
        print(path)
