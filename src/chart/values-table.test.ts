import { describe, expect, it } from 'vitest';
import { documentedValues, renderValuesTable, TABLE_END, TABLE_START, withValuesTable } from './values-table.ts';

describe('documentedValues', () => {
  it('reads "# -- " comments, nested keys, and a documented map as one entry', () => {
    const values = [
      '# Header text that documents nothing.',
      '',
      '# -- How many.',
      'replicas: 2',
      'image:',
      '  # -- Where from,',
      '  # over two lines.',
      '  repository: guard',
      '  # -- Which | tag.',
      '  tag: ""',
      '# -- Passed through.',
      'resources:',
      '  limits: { cpu: 1 }',
    ].join('\n');
    expect(documentedValues(values)).toEqual([
      { key: 'replicas', defaultValue: '2', description: 'How many.' },
      { key: 'image.repository', defaultValue: '"guard"', description: 'Where from, over two lines.' },
      { key: 'image.tag', defaultValue: '""', description: 'Which | tag.' },
      { key: 'resources', defaultValue: '{"limits":{"cpu":1}}', description: 'Passed through.' },
    ]);
    expect(renderValuesTable(documentedValues(values))).toContain('| `image.tag` | `""` | Which \\| tag. |');
  });

  it('refuses an undocumented value, naming it', () => {
    expect(() => documentedValues('# -- A.\na: 1\nb:\n  c: 2\n')).toThrow(/b\.c has no/);
  });

  it('replaces only what lies between the markers', () => {
    const readme = `before\n${TABLE_START}\nold\n${TABLE_END}\nafter\n`;
    expect(withValuesTable(readme, 'NEW')).toBe(`before\n${TABLE_START}\n\nNEW\n\n${TABLE_END}\nafter\n`);
    expect(() => withValuesTable('no markers', 'x')).toThrow(/needs the lines/);
  });
});
