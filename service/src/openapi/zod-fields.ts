import { z } from "zod";

// The OpenAPI document splits a verb's one input schema into path parameters, query parameters
// and a body. zod's own `.omit()` refuses objects with refinements, and inputs may be pipes or
// unions, so these helpers rebuild plain objects from the fields. Refinements never show in a
// JSON Schema anyway, so the document loses nothing (the service still validates with the original).

type Shape = Record<string, z.ZodType>;

/** The fields a client may send, seen from the input side: objects, pipes (their input), unions, intersections. */
export function fieldsOf(schema: z.ZodType): Shape {
  const def = schema._zod.def;
  switch (def.type) {
    case "object":
      return { ...(schema as z.ZodObject).shape };
    case "pipe":
      return fieldsOf((schema as z.ZodPipe).in as z.ZodType);
    case "lazy":
      return fieldsOf((schema as z.ZodLazy).unwrap() as z.ZodType);
    case "intersection": {
      const { left, right } = (schema as z.ZodIntersection)._zod.def;
      return { ...fieldsOf(left as z.ZodType), ...fieldsOf(right as z.ZodType) };
    }
    case "union": {
      // A field that only some branches have is optional in the merged view.
      const branches = (schema as z.ZodUnion)._zod.def.options.map((o) => fieldsOf(o as z.ZodType));
      const merged: Shape = {};
      for (const branch of branches)
        for (const [name, field] of Object.entries(branch)) {
          const everywhere = branches.every((b) => name in b);
          merged[name] ??= everywhere ? field : field.optional();
        }
      return merged;
    }
    default:
      return {};
  }
}

/** The same input without some fields (the path parameters of a body), keeping its unions. */
export function withoutFields(schema: z.ZodType, names: readonly string[]): z.ZodType {
  if (names.length === 0) return schema;
  const def = schema._zod.def;
  switch (def.type) {
    case "object": {
      const kept = Object.entries((schema as z.ZodObject).shape).filter(([name]) => !names.includes(name));
      const description = schema.description;
      const rebuilt = z.object(Object.fromEntries(kept));
      return description ? rebuilt.describe(description) : rebuilt;
    }
    case "pipe":
      return withoutFields((schema as z.ZodPipe).in as z.ZodType, names);
    case "lazy":
      return withoutFields((schema as z.ZodLazy).unwrap() as z.ZodType, names);
    case "intersection": {
      const { left, right } = (schema as z.ZodIntersection)._zod.def;
      return z.intersection(
        withoutFields(left as z.ZodType, names),
        withoutFields(right as z.ZodType, names),
      );
    }
    case "union": {
      const options = (schema as z.ZodUnion)._zod.def.options.map((o) =>
        withoutFields(o as z.ZodType, names),
      );
      return z.union(options);
    }
    default:
      return schema;
  }
}

/** True when the schema refuses a missing value: what `required` means to a client. */
export function refusesAbsent(schema: z.ZodType): boolean {
  try {
    return !schema.safeParse(undefined).success;
  } catch {
    return true;
  }
}

/** True when an empty JSON object is not an acceptable body. */
export function needsBody(schema: z.ZodType): boolean {
  try {
    return !schema.safeParse({}).success;
  } catch {
    return true;
  }
}
