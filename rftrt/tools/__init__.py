"""What rftrt measures and reports about models: benchmarks (``bench/``), inspection
(``inspect/``), accuracy on labelled folders (``evaluate``), the zoo table (``zoo``)."""
