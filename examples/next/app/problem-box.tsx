import type { Problem } from '@/lib/problems'

/** A problem as every page of this app shows it: its code, what was said, and the fix. */
export default function ProblemBox({ id, title, problem }: { id: string; title: string; problem: Problem }) {
  return (
    <div id={id} className="problem" role="alert">
      <p className="problem-title">
        <strong>{title}</strong> <code className="problem-code">{problem.code}</code>
      </p>
      {problem.detail && <p className="problem-detail">{problem.detail}</p>}
      <p className="problem-fix">
        <strong>Fix:</strong> {problem.fix}
      </p>
    </div>
  )
}
